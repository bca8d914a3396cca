# Sourced by the Slurm benchmarks (not one itself: not *.sh): a private 3-node cluster
# on this machine as tests/common/slurm.rs makes it (its own munged, slurmctld and three
# slurmd on free loopback ports, the test cluster's slurm.conf.in, four fake GPUs per
# node made with mknod), torn down on exit. Sets $d (its folder) and SLURM_CONF.
# Needs root (mknod) and slurm-wlm and munge (scripts/test installs them).
for p in munged slurmctld slurmd sbatch srun; do
  command -v "$p" >/dev/null || { echo "$p is not installed: apt-get install slurm-wlm munge (scripts/test does)" >&2; exit 1; }
done
d=$(mktemp -d /tmp/stagehand-bench-slurm-XXXXXX)
chmod 755 "$d"
pids=()
cleanup() {
  SLURM_CONF=$d/slurm.conf scancel --full -u "$(id -un)" 2>/dev/null || true
  for ((i=${#pids[@]}-1; i>=0; i--)); do kill "${pids[$i]}" 2>/dev/null || true; done
  for p in "${pids[@]}"; do
    for _ in $(seq 75); do kill -0 "$p" 2>/dev/null || break; sleep 0.2; done
    kill -9 "$p" 2>/dev/null || true
  done
  rm -rf "$d"
}
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

mkdir -p "$d"/{state,log,munge,spool/n1,spool/n2,spool/n3,work,gpu}
chmod 755 "$d/munge"
head -c 1024 /dev/urandom >"$d/munge/key"; chmod 400 "$d/munge/key"
for i in 0 1 2 3; do mknod -m 666 "$d/gpu/fakegpu$i" c 195 "$i"; done
echo "Name=gpu File=$d/gpu/fakegpu[0-3]" >"$d/gres.conf"
ctld=$(free_port)
sed -e "s|@NAME@|bench|" -e "s|@CTLD@|$ctld|g" -e "s|@DIR@|$d|g" -e "s|@USER@|$(id -un)|g" \
  "$root/tests/common/slurm.conf.in" >"$d/slurm.conf"
for n in 1 2 3; do
  echo "NodeName=n$n NodeHostname=localhost NodeAddr=127.0.0.1 CPUs=4 RealMemory=4096 Gres=gpu:4 Port=$(free_port)" >>"$d/slurm.conf"
done
echo "PartitionName=debug Nodes=n[1-3] Default=YES MaxTime=INFINITE State=UP" >>"$d/slurm.conf"
export SLURM_CONF=$d/slurm.conf

munged --foreground --key-file="$d/munge/key" --socket="$d/munge/sock" --pid-file="$d/munge/pid" \
  --log-file="$d/munge/log" --seed-file="$d/munge/seed" --num-threads=4 >"$d/log/munged.out" 2>&1 & pids+=($!)
for _ in $(seq 50); do [ -S "$d/munge/sock" ] && break; sleep 0.1; done
slurmctld -D -c -f "$SLURM_CONF" >"$d/log/ctld.out" 2>&1 & pids+=($!)
for n in n1 n2 n3; do slurmd -D -N "$n" -f "$SLURM_CONF" >"$d/log/$n.out" 2>&1 & pids+=($!); done
for _ in $(seq 150); do
  [ "$(sinfo -h -N -o '%t' 2>/dev/null | grep -c idle)" = 3 ] && break; sleep 0.2
done
[ "$(sinfo -h -N -o '%t' | grep -c idle)" = 3 ] || { echo "the cluster did not start; see $d/log" >&2; tail "$d"/log/*; exit 1; }
