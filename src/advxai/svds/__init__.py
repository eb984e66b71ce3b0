"""The singing-voice detector (SVDS): features, network, training and evaluation."""
