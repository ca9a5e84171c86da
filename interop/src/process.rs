//! Processes started inside a namespace (a responder under test, a charon), stopped by
//! their own process id, with their output kept in a per-test directory that is printed
//! when a test fails.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use crate::Error;
use crate::netns::{Netns, signal, unique_tag};

/// A directory under the system temp dir, unique per test; removed on drop unless the
/// thread is panicking (a failed test), in which case its path is printed so the logs
/// can be read.
#[derive(Debug)]
pub struct WorkDir {
    path: PathBuf,
}

impl WorkDir {
    /// Creates `/tmp/baton-interop-<pid>-<n>-<label>`.
    pub fn new(label: &str) -> Result<Self, Error> {
        let path = std::env::temp_dir().join(format!("baton-interop-{}-{label}", unique_tag()));
        std::fs::create_dir_all(&path)
            .map_err(|e| Error::new(format!("mkdir {}: {e}", path.display())))?;
        Ok(Self { path })
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Writes `name` in the directory and returns its path.
    pub fn write(&self, name: &str, contents: &str) -> Result<PathBuf, Error> {
        let p = self.path.join(name);
        std::fs::write(&p, contents)
            .map_err(|e| Error::new(format!("write {}: {e}", p.display())))?;
        Ok(p)
    }
}

impl Drop for WorkDir {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("interop: kept {} for inspection", self.path.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}

/// The last `lines` lines of a text file (empty if unreadable).
pub fn tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// A long-running process inside a namespace (e.g. `batond --config FILE`), with its
/// stdout and stderr in `<workdir>/<label>.log`. Stopped (SIGTERM, then SIGKILL) on drop;
/// when a test fails its log's tail is printed.
#[derive(Debug)]
pub struct Daemon {
    label: String,
    child: Option<Child>,
    log: PathBuf,
}

impl Daemon {
    /// Starts `program args...` inside `ns`, output to `<dir>/<label>.log`.
    pub fn spawn(
        ns: &Netns,
        dir: &Path,
        label: &str,
        program: &str,
        args: &[&str],
    ) -> Result<Self, Error> {
        let log = dir.join(format!("{label}.log"));
        let out =
            File::create(&log).map_err(|e| Error::new(format!("create {}: {e}", log.display())))?;
        let err = out
            .try_clone()
            .map_err(|e| Error::new(format!("dup {}: {e}", log.display())))?;
        let child = ns
            .command(program)
            .args(args)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .map_err(|e| Error::new(format!("spawn {program} in {}: {e}", ns.name())))?;
        Ok(Self {
            label: label.to_owned(),
            child: Some(child),
            log,
        })
    }

    /// Wraps an already started child (used by [`crate::strongswan::Charon`]).
    pub(crate) fn from_child(label: &str, child: Child, log: PathBuf) -> Self {
        Self {
            label: label.to_owned(),
            child: Some(child),
            log,
        }
    }

    /// The process id (the program itself: `ip netns exec` and `unshare` exec it).
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Whether the process is still running; `Err` carries its exit status and log if not.
    pub fn check_running(&mut self) -> Result<(), Error> {
        let Some(child) = self.child.as_mut() else {
            return Err(Error::new(format!("{} was stopped", self.label)));
        };
        match child.try_wait() {
            Ok(None) => Ok(()),
            Ok(Some(status)) => Err(Error::new(format!(
                "{} exited ({status}); log {}:\n{}",
                self.label,
                self.log.display(),
                tail(&self.log, 40)
            ))),
            Err(e) => Err(Error::new(format!("{}: wait: {e}", self.label))),
        }
    }

    /// The output log's path.
    pub fn log_path(&self) -> &Path {
        &self.log
    }

    /// The whole output so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Sends SIGTERM, waits up to `grace`, then SIGKILL. Returns the exit status.
    pub fn stop(&mut self, grace: Duration) -> Result<ExitStatus, Error> {
        let Some(mut child) = self.child.take() else {
            return Err(Error::new(format!("{} already stopped", self.label)));
        };
        if let Ok(Some(status)) = child.try_wait() {
            return Ok(status);
        }
        let _ = signal(child.id(), "TERM");
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = child.try_wait() {
                return Ok(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        child
            .wait()
            .map_err(|e| Error::new(format!("{}: wait: {e}", self.label)))
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if self.child.is_some() {
            let _ = self.stop(Duration::from_secs(2));
        }
        if std::thread::panicking() {
            eprintln!(
                "----- {} log ({}), last 60 lines -----\n{}\n-----",
                self.label,
                self.log.display(),
                tail(&self.log, 60)
            );
        }
    }
}

/// Polls `cond` every 50 ms until it returns `Ok(Some(v))` or `timeout` passes; the
/// error names `what` and the last error `cond` returned.
pub fn wait_for<T>(
    timeout: Duration,
    what: &str,
    mut cond: impl FnMut() -> Result<Option<T>, Error>,
) -> Result<T, Error> {
    let deadline = Instant::now() + timeout;
    let mut last = String::new();
    loop {
        match cond() {
            Ok(Some(v)) => return Ok(v),
            Ok(None) => {}
            Err(e) => last = e.to_string(),
        }
        if Instant::now() >= deadline {
            return Err(Error::new(format!(
                "timed out after {timeout:?} waiting for {what} {last}"
            )));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Whether something in `ns` listens on UDP `port` (`ss -uln`), e.g. a responder that
/// has bound 500 and 4500.
pub fn udp_port_bound(ns: &Netns, port: u16) -> Result<bool, Error> {
    let out = ns.exec("ss", &["-H", "-uln"])?;
    let suffix = format!(":{port}");
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().nth(3))
        .any(|local| local.ends_with(&suffix)))
}
