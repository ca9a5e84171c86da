//! Network namespaces and veth links with names unique to this process and test, removed
//! on drop (also when a test panics), so tests can run in parallel.

use std::net::Ipv4Addr;
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

use crate::Error;

static NEXT_ID: AtomicU32 = AtomicU32::new(0);

/// A name fragment unique within this machine for the life of this process:
/// the process id and a per-process counter.
pub fn unique_tag() -> String {
    let n = NEXT_ID.fetch_add(1, Ordering::Relaxed);
    format!("{}-{n}", std::process::id())
}

/// A `Command` for `program` whose PATH also has /usr/sbin and /sbin (where Debian puts
/// `ip`, `nft` and `swanctl`), which a non-login root shell or CI job may lack.
pub fn command(program: impl AsRef<std::ffi::OsStr>) -> Command {
    let path = std::env::var("PATH").unwrap_or_default();
    let mut c = Command::new(program);
    c.env(
        "PATH",
        format!("{path}:/usr/local/sbin:/usr/sbin:/sbin:/usr/bin:/bin"),
    );
    c
}

/// Runs a command to completion; a non-zero exit becomes an error carrying the
/// command line and its stderr.
pub fn run(program: &str, args: &[&str]) -> Result<Output, Error> {
    let out = command(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| Error::new(format!("cannot run {program}: {e}")))?;
    if !out.status.success() {
        return Err(Error::new(format!(
            "`{program} {}` failed ({}): {}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(out)
}

/// Sends `SIGsig` to `pid` (the shell's `kill` builtin: /bin/kill is in procps, which a
/// minimal Debian does not ship).
pub fn signal(pid: u32, sig: &str) -> Result<(), Error> {
    run("sh", &["-c", &format!("kill -{sig} {pid}")]).map(|_| ())
}

/// A network namespace (`ip netns`), deleted with everything still running in it when
/// dropped.
#[derive(Debug)]
pub struct Netns {
    name: String,
}

impl Netns {
    /// Creates a namespace named `baton-<pid>-<n>-<role>` with `lo` up.
    pub fn new(role: &str) -> Result<Self, Error> {
        let name = format!("baton-{}-{role}", unique_tag());
        run("ip", &["netns", "add", &name])?;
        let ns = Self { name };
        ns.ip(&["link", "set", "lo", "up"])?;
        Ok(ns)
    }

    /// The namespace's name (for `ip netns exec`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Runs `ip -n <ns> args...`.
    pub fn ip(&self, args: &[&str]) -> Result<Output, Error> {
        let mut a = vec!["-n", self.name.as_str()];
        a.extend_from_slice(args);
        run("ip", &a)
    }

    /// A `Command` that runs `program` inside the namespace.
    pub fn command(&self, program: &str) -> Command {
        let mut c = command("ip");
        c.args(["netns", "exec", &self.name, program]);
        c
    }

    /// Runs `program args...` inside the namespace to completion (error on non-zero exit).
    pub fn exec(&self, program: &str, args: &[&str]) -> Result<Output, Error> {
        let mut a = vec!["netns", "exec", self.name.as_str(), program];
        a.extend_from_slice(args);
        run("ip", &a)
    }

    /// Adds `addr/prefix` to `dev` and brings `dev` up.
    pub fn add_addr(&self, dev: &str, addr: Ipv4Addr, prefix: u8) -> Result<(), Error> {
        self.ip(&["addr", "add", &format!("{addr}/{prefix}"), "dev", dev])?;
        self.ip(&["link", "set", dev, "up"])?;
        Ok(())
    }

    /// Sets the default route via `gateway`.
    pub fn default_route(&self, gateway: Ipv4Addr) -> Result<(), Error> {
        self.ip(&["route", "add", "default", "via", &gateway.to_string()])?;
        Ok(())
    }

    /// Enables IPv4 forwarding in the namespace.
    pub fn enable_forwarding(&self) -> Result<(), Error> {
        // net.* sysctls are per namespace; no procps needed.
        self.exec("sh", &["-c", "echo 1 > /proc/sys/net/ipv4/ip_forward"])?;
        Ok(())
    }

    /// Process ids running inside the namespace.
    pub fn pids(&self) -> Vec<u32> {
        run("ip", &["netns", "pids", &self.name])
            .map(|o| {
                String::from_utf8_lossy(&o.stdout)
                    .split_whitespace()
                    .filter_map(|p| p.parse().ok())
                    .collect()
            })
            .unwrap_or_default()
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        // Anything left running in here (a process whose owner forgot it) would keep
        // the namespace alive: end it by its id first.
        for pid in self.pids() {
            let _ = signal(pid, "KILL");
        }
        let _ = run("ip", &["netns", "del", &self.name]);
    }
}

/// Connects `a` and `b` with a veth pair: `a_if` in `a` with `a_addr/prefix`, `b_if` in
/// `b` with `b_addr/prefix`. Both ends are created directly inside their namespaces, so
/// interface names only need to be unique per namespace; the pair disappears with
/// either namespace.
pub fn veth(
    a: &Netns,
    a_if: &str,
    a_addr: Ipv4Addr,
    b: &Netns,
    b_if: &str,
    b_addr: Ipv4Addr,
    prefix: u8,
) -> Result<(), Error> {
    a.ip(&[
        "link",
        "add",
        a_if,
        "type",
        "veth",
        "peer",
        "name",
        b_if,
        "netns",
        b.name(),
    ])?;
    a.add_addr(a_if, a_addr, prefix)?;
    b.add_addr(b_if, b_addr, prefix)?;
    Ok(())
}
