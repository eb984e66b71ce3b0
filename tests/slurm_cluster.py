"""A one-node SLURM cluster on this machine, for the tests of profiles/slurm (docs/cluster.md).

Debian's `slurm-wlm` and `munge`, installed with apt-get when missing, daemons started by hand
(no systemd). slurm.conf and gres.conf are written into a scratch folder and linked from
/etc/slurm, where every client finds them: the plugin's job step strips `SLURM_CONF` from the
environment of its inner `srun`. A slurm.conf there that this module did not write is never
replaced. The node declares fake GPUs (gres.conf over character devices made with mknod) so that
GPU rules can be scheduled; their jobs fall back to the CPU. Daemons are stopped by the pids in
their pid files, never by name.

Once per machine, however many test processes start: the installation runs under a machine-wide
file lock and checks again inside it, and a cluster holds a second machine-wide lock from its
start to its stop, so a second cluster (another xdist worker, another pytest) waits for the first
to stop instead of fighting it for the dpkg lock, munged's socket or slurmctld's port.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from filelock import FileLock, Timeout

PACKAGES = ["slurm-wlm", "munge"]
MUNGE_SOCKET = Path("/run/munge/munge.socket.2")
SYSTEM_CONF_DIR = Path("/etc/slurm")
MARKER = "# written by advxai tests/slurm_cluster.py"
PARTITION = "debug"
SETUP_LOCK = Path("/tmp/advxai-slurm-setup.lock")  # /tmp: one per machine, writable by everyone
CLUSTER_LOCK = Path("/tmp/advxai-slurm-cluster.lock")
SPOOL = Path("/tmp/advxai-slurmd")  # slurmstepd's sockets live here: a Unix socket path has at most 108 bytes, which a
# spool inside pytest's shared-run folder exceeded (every batch job failed to launch); one cluster at a time holds it
CLUSTER_WAIT_S = 3000  # another test process's SLURM run (RUN_TIMEOUT_S in tests/test_slurm.py) and its stop


class ClusterUnavailable(RuntimeError):
    """SLURM cannot be installed or started here; the message says why."""


def _run(command: list[str], timeout: float = 120, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout, **kwargs)


def _installed() -> bool:
    return all(shutil.which(program) for program in ("slurmctld", "slurmd", "munged"))


def ensure_installed(lock: Path = SETUP_LOCK) -> None:
    """Install slurm-wlm and munge with apt-get where slurmctld, slurmd or munged is missing; once
    per machine: under the machine-wide `lock`, a process that waited finds them installed."""
    if _installed():
        return
    with FileLock(lock, timeout=1200):
        if _installed():
            return
        if os.geteuid() != 0:
            raise ClusterUnavailable(f"slurm-wlm/munge are not installed and installing them needs root (uid {os.geteuid()})")
        if not shutil.which("apt-get"):
            raise ClusterUnavailable("slurm-wlm/munge are not installed and there is no apt-get to install them")
        environment = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        for command in (["apt-get", "update"], ["apt-get", "install", "-y", "--no-install-recommends", *PACKAGES]):
            result = _run(command, timeout=600, env=environment)
            if result.returncode != 0:
                raise ClusterUnavailable(f"{' '.join(command)} failed ({result.returncode}): {result.stderr[-2000:]}")


def node_hardware() -> dict[str, str]:
    """The node line fields of `slurmd -C` (CPUs, sockets, cores, threads, RealMemory)."""
    result = _run(["slurmd", "-C"])
    if result.returncode != 0:
        raise ClusterUnavailable(f"slurmd -C failed: {result.stderr[-1000:]}")
    first = result.stdout.splitlines()[0]
    fields = dict(item.split("=", 1) for item in first.split())
    fields.pop("NodeName")
    return fields


def declared_hardware(hardware: dict[str, str], cpu_factor: int) -> dict[str, str]:
    """The node's `slurmd -C` fields with `cpu_factor` times its cores, and a little less memory.

    A GPU group runs its jobs one after another (each job step asks for the group's one GPU), so
    a group allocated two CPUs keeps one of them idle; declaring more CPUs than the machine has
    lets two such groups run side by side and keeps the real cores busy. CPUs are bookkeeping
    only here (no cgroups); `SlurmdParameters=config_overrides` accepts the declared count.
    """
    node = dict(hardware)
    node["CPUs"] = str(int(node["CPUs"]) * cpu_factor)
    node["CoresPerSocket"] = str(int(node["CoresPerSocket"]) * cpu_factor)
    # slurmd reports a little less memory than `slurmd -C` at registration; declaring it all makes the node INVAL
    node["RealMemory"] = str(int(node["RealMemory"]) - 512)
    return node


def slurm_conf(folder: Path, node: dict[str, str], gpus: int) -> str:
    """slurm.conf for one node on localhost with the fields `node`; memory and CPU limits are bookkeeping only (no cgroups)."""
    node_fields = " ".join(f"{key}={value}" for key, value in node.items())
    return "\n".join([
        MARKER,
        "ClusterName=advxai-test",
        "SlurmctldHost=localhost",
        "SlurmUser=root",
        f"SlurmctldPidFile={folder}/slurmctld.pid",
        f"SlurmdPidFile={folder}/slurmd.pid",
        f"StateSaveLocation={folder}/state",
        f"SlurmdSpoolDir={SPOOL}",
        f"SlurmctldLogFile={folder}/slurmctld.log",
        f"SlurmdLogFile={folder}/slurmd.log",
        "ProctrackType=proctrack/linuxproc",
        "TaskPlugin=task/none",
        "SelectType=select/cons_tres",
        "SelectTypeParameters=CR_Core_Memory",
        "DefMemPerCPU=1024",  # else a job without --mem takes the whole node
        "MinJobAge=300",  # keeps finished jobs visible to squeue (>= 3x the plugin's first status delay)
        "ReturnToService=2",
        "SlurmdParameters=config_overrides",  # the node is what slurm.conf declares (declared_hardware)
        "MailProg=/bin/true",
        "AccountingStorageType=accounting_storage/none",
        "JobCompType=jobcomp/filetxt",
        f"JobCompLoc={folder}/jobcomp.txt",
        "GresTypes=gpu",
        f"NodeName=localhost NodeAddr=127.0.0.1 {node_fields} Gres=gpu:{gpus} State=UNKNOWN",
        f"PartitionName={PARTITION} Nodes=localhost Default=YES MaxTime=INFINITE State=UP",
        "",
    ])


def _pid(path: Path) -> int | None:
    try:
        return int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _munge_works() -> bool:
    encode = _run(["munge", "-n"], timeout=10)
    return encode.returncode == 0 and _run(["unmunge"], input=encode.stdout, timeout=10).returncode == 0


@dataclass
class OneNodeCluster:
    """Start with `start()`, stop with `stop()`; `environment` has SLURM_CONF for clients and jobs."""

    folder: Path
    gpus: int = 4  # fake GPUs: one per group that can run at once
    cpu_factor: int = 2  # declared CPUs per real core (declared_hardware)
    pid_files: list[Path] = field(default_factory=list)
    links: list[Path] = field(default_factory=list)
    machine_lock: FileLock = field(default_factory=lambda: FileLock(CLUSTER_LOCK))

    @property
    def conf(self) -> Path:
        return self.folder / "slurm.conf"

    @property
    def environment(self) -> dict[str, str]:
        return {**os.environ, "SLURM_CONF": str(self.conf)}

    def start(self, timeout: float = 60) -> None:
        """Install where needed, then start munged (unless one works), slurmctld and slurmd; holds
        the machine-wide cluster lock until `stop()`."""
        ensure_installed()
        if os.geteuid() != 0:
            raise ClusterUnavailable(f"the SLURM daemons of the test cluster run as root (uid {os.geteuid()})")
        try:
            self.machine_lock.acquire(timeout=CLUSTER_WAIT_S)
        except Timeout:
            raise ClusterUnavailable(f"another test cluster held {CLUSTER_LOCK} for {CLUSTER_WAIT_S} s") from None
        self.folder.mkdir(parents=True, exist_ok=True)
        (self.folder / "state").mkdir(exist_ok=True)
        shutil.rmtree(SPOOL, ignore_errors=True)  # held under the cluster lock: no other cluster uses it
        SPOOL.mkdir()
        self._start_munge()
        devices = self.folder / "fakegpu"
        devices.mkdir(exist_ok=True)
        for index in range(self.gpus):
            device = devices / f"gpu{index}"
            if not device.exists():
                os.mknod(device, 0o666 | 0o020000, os.makedev(1, 3))  # a character device like /dev/null
        (self.folder / "gres.conf").write_text(f"{MARKER}\nNodeName=localhost Name=gpu File={devices}/gpu[0-{self.gpus - 1}]\n")
        self.conf.write_text(slurm_conf(self.folder, declared_hardware(node_hardware(), self.cpu_factor), self.gpus))
        self._link_system_conf()
        for daemon, pid_file in (
            (["slurmctld"], self.folder / "slurmctld.pid"),
            (["slurmd", "-N", "localhost"], self.folder / "slurmd.pid"),
        ):
            result = _run(daemon, env=self.environment, timeout=30)  # both fork into the background
            if result.returncode != 0:
                raise ClusterUnavailable(f"{daemon[0]} did not start ({result.returncode}): {result.stderr[-1000:]}{self._log_tail()}")
            self._wait(lambda: _pid(pid_file) is not None, 15, f"{daemon[0]} wrote no pid file {pid_file}")
            self.pid_files.append(pid_file)
        self._wait(self._node_idle, timeout, "the node never became idle in sinfo")

    def _link_system_conf(self) -> None:
        """Point /etc/slurm/{slurm,gres}.conf at ours, unless a configuration not written here is there."""
        SYSTEM_CONF_DIR.mkdir(parents=True, exist_ok=True)
        for name in ("slurm.conf", "gres.conf"):
            link = SYSTEM_CONF_DIR / name
            if link.exists() or link.is_symlink():
                left_by_us = not link.exists() or link.read_text().startswith(MARKER)  # dangling, or our marker
                if not left_by_us:
                    raise ClusterUnavailable(f"{link} exists and was not written by the test set-up: this machine has its own SLURM")
                link.unlink()
            link.symlink_to(self.folder / name)
            self.links.append(link)

    def _start_munge(self) -> None:
        if MUNGE_SOCKET.exists() and _munge_works():
            return  # a running munged (the machine's own) serves us too
        key = Path("/etc/munge/munge.key")
        if not key.exists():
            result = _run(["mungekey", "--create"])
            if result.returncode != 0:
                raise ClusterUnavailable(f"mungekey --create failed: {result.stderr[-500:]}")
        shutil.chown(key, "munge", "munge")
        key.chmod(0o600)
        Path("/run/munge").mkdir(parents=True, exist_ok=True)
        shutil.chown("/run/munge", "munge", "munge")
        result = _run(["runuser", "-u", "munge", "--", "/usr/sbin/munged"], timeout=30)
        if result.returncode != 0:
            raise ClusterUnavailable(f"munged did not start ({result.returncode}): {result.stderr[-500:]}")
        self.pid_files.append(Path("/run/munge/munged.pid"))
        self._wait(_munge_works, 15, "munge -n | unmunge fails after starting munged")

    def _node_idle(self) -> bool:
        result = _run(["sinfo", "-h", "-N", "-o", "%T"], env=self.environment, timeout=10)
        return result.returncode == 0 and result.stdout.strip() == "idle"

    def _wait(self, condition, timeout: float, message: str) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if condition():
                return
            time.sleep(0.5)
        raise ClusterUnavailable(f"{message} within {timeout:.0f} s{self._log_tail()}")

    def _log_tail(self) -> str:
        tails = []
        for log in ("slurmctld.log", "slurmd.log"):
            path = self.folder / log
            if path.exists():
                tails.append(f"\n--- {log}\n" + "\n".join(path.read_text().splitlines()[-15:]))
        return "".join(tails)

    def cancel_all_jobs(self, timeout: float = 60) -> None:
        """Cancel every job of the cluster and wait until none is left running: slurmd's job steps
        outlive slurmd itself."""
        listing = _run(["squeue", "-h", "-o", "%i"], env=self.environment, timeout=10)
        jobs = listing.stdout.split() if listing.returncode == 0 else []
        if not jobs:
            return
        _run(["scancel", *jobs], env=self.environment, timeout=30)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            active = _run(["squeue", "-h", "-t", "PENDING,RUNNING,COMPLETING,SUSPENDED", "-o", "%i"], env=self.environment, timeout=10)
            if active.returncode != 0 or not active.stdout.strip():
                return
            time.sleep(0.5)

    def stop(self) -> None:
        """Cancel the jobs, then stop the daemons this object started, newest first, by the pids in
        their pid files."""
        if any(path.name == "slurmctld.pid" for path in self.pid_files):
            self.cancel_all_jobs()
        for pid_file in reversed(self.pid_files):
            pid = _pid(pid_file)
            if pid is None or not _alive(pid):
                continue
            os.kill(pid, signal.SIGTERM)
            deadline = time.monotonic() + 20
            while _alive(pid) and time.monotonic() < deadline:
                time.sleep(0.2)
        self.pid_files.clear()
        for link in self.links:
            link.unlink(missing_ok=True)
        self.links.clear()
        if self.machine_lock.is_locked:
            self.machine_lock.release()
