//! The `usher` binary as an owner runs it: one-shot commands and `usher run` processes whose log
//! (standard error) is collected as it comes, readiness by `/healthz`, stop by SIGTERM, crash by
//! SIGKILL.

use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

/// A folder to run `usher` in and the environment every run gets.
#[derive(Debug, Clone)]
pub struct Usher {
    /// The working folder (`./usher-data` lives here by default).
    pub dir: PathBuf,
    env: Vec<(String, String)>,
}

impl Usher {
    /// Runs in `dir` with a clean environment and `USHER_LOG=info`.
    pub fn new(dir: &Path) -> Self {
        Self {
            dir: dir.to_path_buf(),
            env: vec![("USHER_LOG".into(), "info".into())],
        }
    }

    /// Adds (or replaces) an environment variable for every run.
    #[must_use]
    pub fn env(mut self, name: &str, value: impl Into<String>) -> Self {
        self.env.retain(|(n, _)| n != name);
        self.env.push((name.into(), value.into()));
        self
    }

    /// The command, not started.
    pub fn command(&self, args: &[&str]) -> Command {
        // `USHER_TEST_BIN` overrides the binary cargo built for this test crate: a target folder
        // shared by several checkouts may hold another checkout's `usher` at that path.
        let bin = std::env::var_os("USHER_TEST_BIN")
            .unwrap_or_else(|| env!("CARGO_BIN_EXE_usher").into());
        let mut cmd = Command::new(bin);
        cmd.current_dir(&self.dir)
            .env_clear()
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .args(args);
        cmd
    }

    /// Runs a one-shot command to its end, off the runtime's threads (fakes live on them).
    pub async fn output(&self, args: &[&str]) -> Output {
        let mut cmd = self.command(args);
        tokio::task::spawn_blocking(move || cmd.output().expect("usher runs"))
            .await
            .expect("the command thread")
    }

    /// Runs a one-shot command that must succeed; returns its standard output.
    pub async fn ok(&self, args: &[&str]) -> String {
        let output = self.output(args).await;
        assert!(
            output.status.success(),
            "usher {args:?}: exit {:?}\n{}\n{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    /// Starts `usher run` with these extra arguments; its log is collected as it comes.
    pub fn spawn(&self, args: &[&str]) -> Running {
        let mut full = vec!["run"];
        full.extend_from_slice(args);
        self.spawn_command(&full)
    }

    /// Starts any `usher` command; its output (standard output and error together) is collected
    /// as it comes.
    pub fn spawn_command(&self, args: &[&str]) -> Running {
        let mut child = self
            .command(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("usher run starts");
        let log = Arc::new(Mutex::new(String::new()));
        let readers = [
            collect(child.stdout.take().expect("piped").boxed(), log.clone()),
            collect(child.stderr.take().expect("piped").boxed(), log.clone()),
        ];
        Running {
            child: Some(child),
            log,
            readers: readers.into(),
        }
    }
}

trait Boxed {
    fn boxed(self) -> Box<dyn std::io::Read + Send>;
}

impl<R: std::io::Read + Send + 'static> Boxed for R {
    fn boxed(self) -> Box<dyn std::io::Read + Send> {
        Box::new(self)
    }
}

fn collect(
    mut from: Box<dyn std::io::Read + Send>,
    into: Arc<Mutex<String>>,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let mut buffer = [0u8; 8192];
        while let Ok(n) = from.read(&mut buffer) {
            if n == 0 {
                break;
            }
            into.lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push_str(&String::from_utf8_lossy(&buffer[..n]));
        }
    })
}

/// A running `usher run`. Dropping it kills the process.
pub struct Running {
    child: Option<Child>,
    log: Arc<Mutex<String>>,
    readers: Vec<std::thread::JoinHandle<()>>,
}

impl Running {
    /// Everything it logged so far.
    pub fn log(&self) -> String {
        self.log
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Waits until the log contains `text`; panics with the log after `timeout`.
    pub async fn wait_for_log(&self, text: &str, timeout: Duration) {
        let started = Instant::now();
        while !self.log().contains(text) {
            assert!(
                started.elapsed() < timeout,
                "no `{text}` within {timeout:?}; log:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// Waits until `/healthz` answers 200 on `port`; returns its `x-usher-instance`.
    pub async fn wait_healthy(&self, port: u16) -> String {
        let client = reqwest::Client::new();
        let started = Instant::now();
        loop {
            if let Ok(response) = client
                .get(format!("http://127.0.0.1:{port}/healthz"))
                .send()
                .await
                && response.status() == 200
            {
                return response
                    .headers()
                    .get("x-usher-instance")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_owned();
            }
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "no answer on /healthz within 20 s; log:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits for the process to end by itself; returns the status and the whole output.
    pub async fn wait(mut self) -> (ExitStatus, String) {
        let mut child = self.child.take().expect("still running");
        let readers = std::mem::take(&mut self.readers);
        let log = self.log.clone();
        tokio::task::spawn_blocking(move || {
            let status = child.wait().expect("usher exits");
            for reader in readers {
                let _ = reader.join();
            }
            let log = log.lock().unwrap_or_else(PoisonError::into_inner).clone();
            (status, log)
        })
        .await
        .expect("the wait thread")
    }

    /// Kills the process with SIGKILL, as a crash or the kernel's OOM killer would (no shutdown,
    /// no release of running jobs), and waits for it; returns the status and the whole log.
    pub async fn kill(mut self) -> (ExitStatus, String) {
        let mut child = self.child.take().expect("still running");
        let readers = std::mem::take(&mut self.readers);
        let log = self.log.clone();
        tokio::task::spawn_blocking(move || {
            // std's Child::kill is SIGKILL on Unix.
            child.kill().expect("SIGKILL reaches usher");
            let status = child.wait().expect("usher exits");
            for reader in readers {
                let _ = reader.join();
            }
            let log = log.lock().unwrap_or_else(PoisonError::into_inner).clone();
            (status, log)
        })
        .await
        .expect("the kill thread")
    }

    /// Sends SIGTERM and waits for the exit; returns the status and the whole log.
    pub async fn stop(mut self) -> (ExitStatus, String) {
        let mut child = self.child.take().expect("still running");
        let readers = std::mem::take(&mut self.readers);
        let log = self.log.clone();
        tokio::task::spawn_blocking(move || {
            let pid = child.id().to_string();
            let _ = Command::new("kill").args(["-TERM", &pid]).status();
            let status = child.wait().expect("usher exits");
            for reader in readers {
                let _ = reader.join();
            }
            let log = log.lock().unwrap_or_else(PoisonError::into_inner).clone();
            (status, log)
        })
        .await
        .expect("the stop thread")
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A port nobody listens on right now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}
