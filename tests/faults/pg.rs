//! A private PostgreSQL cluster that a scenario may stop and start (the shared
//! test cluster of `ecs_tests::servers` must never be stopped: other tests use
//! it). `initdb` + `pg_ctl` from `$ECS_PG_BIN`, the newest
//! `/usr/lib/postgresql/<v>/bin`, or `PATH`; run as the `postgres` user when
//! we are root. Stopped and removed on drop, and by a detached watcher if the
//! test process dies first.

use std::fs;
use std::net::TcpListener;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, bail};

/// A PostgreSQL cluster of this process, on a fixed port across restarts.
pub struct PgCluster {
    dir: PathBuf,
    port: u16,
    running: bool,
    /// `synchronous_commit` on (every acknowledged commit survives a crash).
    durable: bool,
}

impl PgCluster {
    /// `initdb` in a fresh temp dir, then start on a free port. `durable`:
    /// keep `synchronous_commit` on, so that a commit PostgreSQL acknowledged
    /// survives a crash of PostgreSQL (`fsync` is off either way: it only
    /// matters when the whole machine crashes). Without it, an immediate stop
    /// loses the last acknowledged commits, as `synchronous_commit = off`
    /// documents.
    pub fn start(durable: bool) -> anyhow::Result<PgCluster> {
        let dir = tempfile::Builder::new()
            .prefix("ecs-faults-pg-")
            .tempdir()
            .context("create temp dir for PostgreSQL")?
            .keep();
        let mut cluster = PgCluster {
            dir,
            port: 0,
            running: false,
            durable,
        };
        if is_root() {
            run(Command::new("chown")
                .arg("postgres:postgres")
                .arg(&cluster.dir))
            .context("chown the cluster dir to postgres (is there a `postgres` user?)")?;
        }
        run(pg_command(&pg_tool("initdb"))
            .arg("-D")
            .arg(cluster.data())
            .args([
                "-U",
                "postgres",
                "--auth=trust",
                "-E",
                "UTF8",
                "--no-locale",
                "--no-sync",
            ]))
        .context("initdb")?;
        spawn_reaper(&cluster.data(), &cluster.dir)?;
        let mut last = None;
        for _ in 0..5 {
            cluster.port = free_port()?;
            match cluster.start_again() {
                Ok(()) => return Ok(cluster),
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| anyhow::anyhow!("pg_ctl start failed")))
    }

    fn data(&self) -> PathBuf {
        self.dir.join("data")
    }

    fn log(&self) -> PathBuf {
        self.dir.join("postgres.log")
    }

    /// `postgres://postgres@127.0.0.1:<port>/<db>`
    pub fn url(&self, db: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{db}", self.port)
    }

    /// Creates a database.
    pub async fn create_database(&self, name: &str) -> anyhow::Result<String> {
        use sqlx::Connection;
        let mut conn = sqlx::PgConnection::connect(&self.url("postgres")).await?;
        sqlx::query(&format!("CREATE DATABASE \"{name}\""))
            .execute(&mut conn)
            .await?;
        let _ = conn.close().await;
        Ok(self.url(name))
    }

    /// Starts the (stopped) cluster on its port and waits until it accepts
    /// connections.
    pub fn start_again(&mut self) -> anyhow::Result<()> {
        let opts = format!(
            "-c listen_addresses=127.0.0.1 -p {} -k {} -c fsync=off \
             -c synchronous_commit={} -c max_connections=100",
            self.port,
            self.dir.display(),
            if self.durable { "on" } else { "off" }
        );
        run(pg_command(&pg_tool("pg_ctl"))
            .arg("-D")
            .arg(self.data())
            .arg("-l")
            .arg(self.log())
            .args(["-w", "-t", "60", "-o", &opts, "start"]))
        .with_context(|| {
            format!(
                "pg_ctl start; log:\n{}",
                fs::read_to_string(self.log()).unwrap_or_default()
            )
        })?;
        self.running = true;
        Ok(())
    }

    /// Stops the cluster at once, as a crash would (`pg_ctl -m immediate`:
    /// the server processes quit without a checkpoint; connections drop).
    pub fn stop_immediate(&mut self) -> anyhow::Result<()> {
        run(pg_command(&pg_tool("pg_ctl"))
            .arg("-D")
            .arg(self.data())
            .args(["-m", "immediate", "-w", "stop"]))?;
        self.running = false;
        Ok(())
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        if self.running {
            let _ = self.stop_immediate();
        }
        let _ = fs::remove_dir_all(&self.dir);
    }
}

fn is_root() -> bool {
    fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

fn pg_bin_dir() -> Option<PathBuf> {
    if let Some(dir) = std::env::var("ECS_PG_BIN").ok().filter(|s| !s.is_empty()) {
        return Some(PathBuf::from(dir));
    }
    let mut best: Option<(u32, PathBuf)> = None;
    for entry in fs::read_dir("/usr/lib/postgresql").ok()?.flatten() {
        let Ok(version) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let bin = entry.path().join("bin");
        if bin.join("initdb").exists() && best.as_ref().is_none_or(|(v, _)| version > *v) {
            best = Some((version, bin));
        }
    }
    best.map(|(_, bin)| bin)
}

fn pg_tool(name: &str) -> PathBuf {
    pg_bin_dir().map_or_else(|| PathBuf::from(name), |dir| dir.join(name))
}

fn pg_command(program: &Path) -> Command {
    if is_root() {
        let mut cmd = Command::new("runuser");
        cmd.args(["-u", "postgres", "--"]).arg(program);
        cmd
    } else {
        Command::new(program)
    }
}

fn run(cmd: &mut Command) -> anyhow::Result<()> {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("run {cmd:?}"))?;
    if !out.status.success() {
        bail!(
            "{cmd:?} failed ({}):\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}

fn free_port() -> anyhow::Result<u16> {
    let listener = TcpListener::bind("127.0.0.1:0").context("bind a free port")?;
    Ok(listener.local_addr()?.port())
}

/// A detached shell that stops the cluster and removes its directory once
/// this process has exited (in case the test process dies before `Drop`).
fn spawn_reaper(data: &Path, dir: &Path) -> anyhow::Result<()> {
    let as_pg = if is_root() {
        "runuser -u postgres -- "
    } else {
        ""
    };
    let script = format!(
        "( trap '' INT HUP TERM PIPE; \
           while kill -0 {pid} 2>/dev/null; do sleep 0.5; done; \
           {as_pg}'{pg_ctl}' -D '{data}' -m immediate stop >/dev/null 2>&1; \
           rm -rf '{dir}' ) &",
        pid = std::process::id(),
        pg_ctl = pg_tool("pg_ctl").display(),
        data = data.display(),
        dir = dir.display(),
    );
    Command::new("sh")
        .args(["-c", &script])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .context("spawn the PostgreSQL reaper")?;
    Ok(())
}
