//! `ikectl`: the control CLI of `batond`.
//!
//! `ikectl [--socket PATH] COMMAND [--json]`; exits 0 on success, 1 when the daemon
//! refuses the command (unknown SA, reload error...), 2 on usage errors, and 3 when it
//! cannot reach the daemon.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use gateway::control::{self, ClientError, ClusterView, IkeSaView, Request, StatusView};

/// Control a running batond.
#[derive(Debug, Parser)]
#[command(name = "ikectl", version, about)]
struct Args {
    /// The daemon's control socket.
    #[arg(long, global = true, value_name = "PATH", default_value = gateway::config::DEFAULT_CONTROL_SOCKET)]
    socket: PathBuf,
    /// Print JSON instead of tables.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Daemon status.
    Status,
    /// List IKE SAs and their Child SAs.
    ListSas,
    /// Show one IKE SA.
    Show {
        /// IKE SA id (or a unique prefix of 4+ hex digits).
        sa: String,
    },
    /// Delete an IKE SA (the peer is told).
    Terminate {
        /// IKE SA id (or a unique prefix).
        sa: String,
    },
    /// Re-read the configuration file (as SIGHUP does).
    Reload,
    /// Cluster members, ownership and sync lag.
    Cluster,
    /// Move an IKE SA to another node.
    Transfer {
        /// IKE SA id.
        sa: String,
        /// Target node.
        #[arg(long)]
        to: String,
    },
    /// Move every IKE SA away from a node (it takes no new ones until `undrain`).
    Drain {
        /// Node name.
        node: String,
    },
    /// End a drain: the node takes new and moved SAs again.
    Undrain {
        /// Node name.
        node: String,
    },
}

fn main() -> ExitCode {
    let args = Args::parse();
    let req = match &args.command {
        Command::Status => Request::Status,
        Command::ListSas => Request::ListSas,
        Command::Show { sa } => Request::Show { sa: sa.clone() },
        Command::Terminate { sa } => Request::Terminate { sa: sa.clone() },
        Command::Reload => Request::Reload,
        Command::Cluster => Request::Cluster,
        Command::Transfer { sa, to } => Request::Transfer {
            sa: sa.clone(),
            to: to.clone(),
        },
        Command::Drain { node } => Request::Drain { node: node.clone() },
        Command::Undrain { node } => Request::Undrain { node: node.clone() },
    };
    let value = match control::request(&args.socket, &req, Duration::from_secs(10)) {
        Ok(v) => v,
        Err(e) => {
            eprintln!("ikectl: {e}");
            return match e {
                ClientError::Refused(_) => ExitCode::from(1),
                _ => ExitCode::from(3),
            };
        }
    };
    if args.json {
        match serde_json::to_string_pretty(&value) {
            Ok(s) => println!("{s}"),
            Err(e) => {
                eprintln!("ikectl: {e}");
                return ExitCode::from(1);
            }
        }
        return ExitCode::SUCCESS;
    }
    let text = match &args.command {
        Command::Status => {
            serde_json::from_value::<StatusView>(value.clone()).map(|s| status_text(&s))
        }
        Command::ListSas => {
            serde_json::from_value::<Vec<IkeSaView>>(value.clone()).map(|v| sas_table(&v))
        }
        Command::Show { .. } => {
            serde_json::from_value::<IkeSaView>(value.clone()).map(|v| sa_detail(&v))
        }
        Command::Cluster => {
            serde_json::from_value::<ClusterView>(value.clone()).map(|v| cluster_text(&v))
        }
        _ => Ok(plain(&value)),
    };
    match text {
        Ok(t) => {
            print!("{t}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("ikectl: unexpected answer from batond: {e}");
            ExitCode::from(1)
        }
    }
}

fn plain(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::Object(m) => m
            .iter()
            .map(|(k, v)| match v {
                serde_json::Value::String(s) => format!("{k}: {s}\n"),
                other => format!("{k}: {other}\n"),
            })
            .collect(),
        serde_json::Value::Null => "ok\n".into(),
        other => format!("{other}\n"),
    }
}

fn status_text(s: &StatusView) -> String {
    format!(
        "batond {} (pid {}), up {}s, node {}\n\
         config:      {} ({} reload(s))\n\
         listening:   {}\n\
         data plane:  {}\n\
         core:        {}\n\
         connections: {}\n\
         IKE SAs: {} established, {} half-open; Child SAs: {}{}\n",
        s.version,
        s.pid,
        s.uptime_secs,
        s.node,
        s.config,
        s.reloads,
        s.listen.join(", "),
        s.dataplane,
        s.protocol_core,
        s.connections.join(", "),
        s.ike_sas,
        s.half_open,
        s.child_sas,
        s.dataplane_sas
            .map_or(String::new(), |n| format!(" ({n} SAs in the data plane)"))
    )
}

/// A table with columns padded to their widest cell.
fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for r in rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.len());
        }
    }
    let line = |cells: Vec<&str>| {
        let mut s: String = cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}  ", w = *w))
            .collect();
        s.truncate(s.trim_end().len());
        s.push('\n');
        s
    };
    let mut out = line(header.to_vec());
    for r in rows {
        out.push_str(&line(r.iter().map(String::as_str).collect()));
    }
    out
}

fn sas_table(sas: &[IkeSaView]) -> String {
    if sas.is_empty() {
        return "no IKE SAs\n".into();
    }
    let rows: Vec<Vec<String>> = sas
        .iter()
        .map(|s| {
            vec![
                s.id.clone(),
                s.connection.clone(),
                s.state.clone(),
                s.remote_id.clone(),
                s.remote_addr.clone(),
                s.virtual_ip.clone().unwrap_or_else(|| "-".into()),
                s.children.len().to_string(),
                s.owner.clone(),
            ]
        })
        .collect();
    table(
        &[
            "ID",
            "CONNECTION",
            "STATE",
            "REMOTE ID",
            "REMOTE ADDR",
            "VIRTUAL IP",
            "CHILDREN",
            "OWNER",
        ],
        &rows,
    )
}

fn sa_detail(s: &IkeSaView) -> String {
    let mut out = format!(
        "IKE SA {} ({}), {}\n  local:  {} at {}\n  remote: {} at {}{}\n  SPIs:   i {} r {}\n  \
         suite:  {}\n  owner:  {}\n",
        s.id,
        s.connection,
        s.state,
        s.local_id,
        s.local_addr,
        s.remote_id,
        s.remote_addr,
        if s.nat_remote { " (behind NAT)" } else { "" },
        s.spi_i,
        s.spi_r,
        s.proposal,
        s.owner
    );
    if let Some(v) = &s.virtual_ip {
        out.push_str(&format!("  virtual IP: {v}\n"));
    }
    if let Some(t) = s.established_secs {
        out.push_str(&format!("  established {t}s ago\n"));
    }
    let rows: Vec<Vec<String>> = s
        .children
        .iter()
        .map(|c| {
            vec![
                c.name.clone(),
                c.state.clone(),
                c.spi_in.clone(),
                c.spi_out.clone(),
                c.local_ts.join(","),
                c.remote_ts.join(","),
            ]
        })
        .collect();
    if !rows.is_empty() {
        out.push_str(&table(
            &[
                "CHILD",
                "STATE",
                "SPI IN",
                "SPI OUT",
                "LOCAL TS",
                "REMOTE TS",
            ],
            &rows,
        ));
    }
    out
}

fn cluster_text(c: &ClusterView) -> String {
    let rows: Vec<Vec<String>> = c
        .members
        .iter()
        .map(|m| {
            let mut state = if m.live { "up" } else { "down" }.to_owned();
            if m.draining {
                state.push_str(",draining");
            }
            vec![
                if m.node == c.node {
                    format!("{} (this node)", m.node)
                } else {
                    m.node.clone()
                },
                state,
                m.sas_owned.to_string(),
                if m.node == c.node {
                    "-".into()
                } else if m.connected {
                    "connected".into()
                } else {
                    "disconnected".into()
                },
                m.replication_lag
                    .map_or_else(|| "-".into(), |l| l.to_string()),
            ]
        })
        .collect();
    let k = &c.counters;
    format!(
        "node {}, membership epoch {}, {} IKE SA record(s), {} transfer(s) queued{}\n{}\
         takeovers {}, RFC 6311 syncs {} started / {} answered ({} resent, {} failed, {} not needed), transfers {} in / {} out, \
         lease renewals {}, ack timeouts {}, held datagrams {}, after partitions: {} outbound SA(s) moved up, {} Message ID merge(s)\n",
        c.node,
        c.epoch,
        c.records,
        c.queued_transfers,
        if c.pools_paused {
            ", address pools paused (waiting for the live members' records)"
        } else {
            ""
        },
        table(&["NODE", "STATE", "SAS OWNED", "REPLICATION", "LAG"], &rows),
        k.takeovers,
        k.syncs_started,
        k.syncs_completed,
        k.sync_retransmissions,
        k.syncs_failed,
        k.syncs_skipped,
        k.transfers_in,
        k.transfers_out,
        k.lease_renewals,
        k.ack_timeouts,
        k.held_datagrams,
        k.lease_moves,
        k.message_id_merges,
    )
}
