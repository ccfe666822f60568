"""A private PostgreSQL server from Debian's `postgresql` package, for the tests and `bench/store.py`.

`PostgresServer().start()` runs `initdb` in a new directory under the system's temp dir and starts the
server on a free loopback port with its socket in that directory, so it shares nothing with a system
cluster. As root it runs both as user `postgres` (`initdb` refuses root), through `runuser`.
`make postgres` installs the package when `initdb` is missing.

    python tools/postgres.py start [DIR]   # prints the URL for RECNB_STORE_URL; leaves it running
    python tools/postgres.py stop DIR
"""
import glob, os, shutil, socket, subprocess, sys, tempfile, time
from pathlib import Path

def pg_bin(tool:str)->str:
    "The path of PostgreSQL's `tool` (initdb, pg_ctl, ...): the newest under /usr/lib/postgresql, else on PATH."
    found = sorted(glob.glob(f'/usr/lib/postgresql/*/bin/{tool}'), key=lambda p: int(Path(p).parts[4]) if Path(p).parts[4].isdigit() else 0)
    if found: return found[-1]
    if p := shutil.which(tool): return p
    raise SystemExit(f"PostgreSQL's {tool} is not installed: run `make postgres` (it installs Debian's postgresql)")

def free_port()->int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0)); return s.getsockname()[1]

class PostgresServer:
    "A PostgreSQL cluster in `root` (a new temp dir by default) on loopback port `port` (a free one by default)."
    def __init__(self, root=None, port:int|None=None, fsync:bool=True):
        self.made = root is None  # a temp dir of our own: removed by `stop(remove=True)` and on leaving `with`
        self.root = Path(root or tempfile.mkdtemp(prefix='recnb-pg-'))
        self.port, self.fsync = port or free_port(), fsync
        self.data, self.log = self.root/'data', self.root/'server.log'
        self.as_root = os.geteuid() == 0

    def _run(self, *cmd, check=True):
        cmd = ['runuser', '-u', 'postgres', '--', *cmd] if self.as_root else list(cmd)
        r = subprocess.run(cmd, capture_output=True, text=True)
        if check and r.returncode: raise RuntimeError(f"{' '.join(cmd)} failed ({r.returncode}): {r.stdout[-2000:]}{r.stderr[-2000:]}")
        return r

    def _own(self, p:Path):
        if self.as_root: shutil.chown(p, 'postgres', 'postgres')

    def start(self)->'PostgresServer':
        "initdb (once) and start the server; returns self."
        self.root.mkdir(parents=True, exist_ok=True); self.root.chmod(0o755); self._own(self.root)
        if not (self.data/'PG_VERSION').exists():
            self._run(pg_bin('initdb'), '-D', str(self.data), '-U', 'postgres', '-A', 'trust', '-E', 'UTF8', '--no-sync', '--locale=C.UTF-8')
        opts = f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c max_connections=200" + ('' if self.fsync else ' -c fsync=off -c synchronous_commit=off')
        self._run(pg_bin('pg_ctl'), '-D', str(self.data), '-l', str(self.log), '-o', opts, '-w', '-t', '60', 'start')
        (self.root/'port').write_text(str(self.port))
        return self

    def watch(self, pid:int|None=None)->'PostgresServer':
        "Stop the server (and remove a temp dir of our own) when process `pid` (default: this one) ends, even by SIGKILL."
        code = ("import os, shutil, subprocess, sys, time\n"
                "pid, cmd, root, made = int(sys.argv[1]), sys.argv[2:-2], sys.argv[-2], sys.argv[-1] == '1'\n"
                "while True:\n"
                "    try: os.kill(pid, 0); time.sleep(1)\n"
                "    except ProcessLookupError: break\n"
                "subprocess.run(cmd, capture_output=True)\n"
                "if made: shutil.rmtree(root, ignore_errors=True)\n")
        stop = ['runuser', '-u', 'postgres', '--'] if self.as_root else []
        stop += [pg_bin('pg_ctl'), '-D', str(self.data), '-m', 'immediate', '-w', 'stop']
        subprocess.Popen([sys.executable, '-c', code, str(pid or os.getpid()), *stop, str(self.root), '1' if self.made else '0'],
                         stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        return self

    def stop(self, mode:str='fast', remove:bool=False):
        self._run(pg_bin('pg_ctl'), '-D', str(self.data), '-m', mode, '-w', 'stop', check=False)
        if remove and self.made: shutil.rmtree(self.root, ignore_errors=True)

    def restart(self):
        "Stop the server (fast: open connections are cut) and start it again on the same port."
        self.stop(); self.start()

    def url(self, db:str='postgres')->str:
        "The SQLAlchemy URL of database `db` (psycopg 3, over loopback TCP)."
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{db}"

    def psql(self, sql:str, db:str='postgres')->str:
        return self._run(pg_bin('psql'), '-h', str(self.root), '-p', str(self.port), '-U', 'postgres', '-d', db, '-XAtq', '-v', 'ON_ERROR_STOP=1', '-c', sql).stdout

    def create_db(self, name:str, template:str|None=None)->str:
        "Create database `name` (a copy of `template` if given); its URL."
        self.psql(f'CREATE DATABASE "{name}"' + (f' TEMPLATE "{template}"' if template else ''))
        return self.url(name)

    def __enter__(self): return self.start()
    def __exit__(self, *exc): self.stop(remove=True)

if __name__ == '__main__':
    cmd, *rest = sys.argv[1:] or ['start']
    if cmd == 'start':
        root = Path(rest[0]) if rest else None
        port = int((root/'port').read_text()) if root and (root/'port').exists() else None
        s = PostgresServer(root, port).start()
        print(s.url(), f"(cluster in {s.root}; stop with: python tools/postgres.py stop {s.root})")
    elif cmd == 'stop' and rest: PostgresServer(rest[0], 1).stop()
    else: raise SystemExit(__doc__)
