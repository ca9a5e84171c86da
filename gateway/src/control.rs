//! The control protocol between `ikectl` and `batond`, shared by both.
//!
//! A Unix stream socket (mode 0600) carrying line-delimited JSON: the client writes one
//! [`Request`] object on one line, the daemon answers with one [`Response`] object on
//! one line, and the client may send further requests on the same connection.
//!
//! ```text
//! → {"cmd":"list-sas"}
//! ← {"ok":true,"result":[{"id":"…","connection":"rw",…}]}
//! → {"cmd":"show","sa":"nope"}
//! ← {"ok":false,"error":"no IKE SA \"nope\""}
//! ```

use std::io::{BufRead, BufReader, Read as _, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Largest request or response line accepted, in octets.
pub const MAX_LINE: usize = 4 * 1024 * 1024;

/// A command.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
#[serde(tag = "cmd", rename_all = "kebab-case", deny_unknown_fields)]
pub enum Request {
    /// Daemon status: version, uptime, configuration, counts.
    Status,
    /// Every IKE SA with its Child SAs.
    ListSas,
    /// One IKE SA.
    Show {
        /// IKE SA id (or a unique prefix of at least 4 hex digits).
        sa: String,
    },
    /// Delete an IKE SA (and its Child SAs), telling the peer.
    Terminate {
        /// IKE SA id (or a unique prefix).
        sa: String,
    },
    /// Re-read the configuration file.
    Reload,
    /// Cluster members, ownership and sync lag.
    Cluster,
    /// Move an IKE SA to another node.
    Transfer {
        /// IKE SA id.
        sa: String,
        /// Target node.
        to: String,
    },
    /// Move every IKE SA away from a node.
    Drain {
        /// Node to drain.
        node: String,
    },
    /// End a drain: the node takes new and moved SAs again.
    Undrain {
        /// Node.
        node: String,
    },
}

/// A reply: `{"ok":true,"result":…}` or `{"ok":false,"error":"…"}`.
#[derive(Clone, PartialEq, Debug, Serialize, Deserialize)]
pub struct Response {
    /// Whether the command succeeded.
    pub ok: bool,
    /// The command's result when it succeeded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<serde_json::Value>,
    /// What went wrong when it did not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl Response {
    /// A success carrying `result`.
    pub fn ok<T: Serialize>(result: &T) -> Self {
        match serde_json::to_value(result) {
            Ok(v) => Self {
                ok: true,
                result: Some(v),
                error: None,
            },
            Err(e) => Self::err(format!("cannot encode the result: {e}")),
        }
    }

    /// A failure.
    pub fn err(msg: impl Into<String>) -> Self {
        Self {
            ok: false,
            result: None,
            error: Some(msg.into()),
        }
    }
}

/// A Child SA as `ikectl` shows it.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct ChildSaView {
    /// Name (the connection's).
    pub name: String,
    /// Inbound SPI, 8 hex digits.
    pub spi_in: String,
    /// Outbound SPI, 8 hex digits.
    pub spi_out: String,
    /// Our traffic selectors.
    pub local_ts: Vec<String>,
    /// The peer's traffic selectors.
    pub remote_ts: Vec<String>,
    /// State.
    pub state: String,
    /// Algorithms.
    pub proposal: String,
}

/// An IKE SA as `ikectl` shows it (`list-sas --json` prints an array of these).
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct IkeSaView {
    /// Id, 16 hex digits.
    pub id: String,
    /// Connection name.
    pub connection: String,
    /// State.
    pub state: String,
    /// Our identity.
    pub local_id: String,
    /// The peer's identity.
    pub remote_id: String,
    /// Our address and port.
    pub local_addr: String,
    /// The peer's address and port.
    pub remote_addr: String,
    /// Initiator SPI, 16 hex digits.
    pub spi_i: String,
    /// Responder SPI, 16 hex digits.
    pub spi_r: String,
    /// The node that owns the SA, or `local` when not clustered.
    pub owner: String,
    /// Algorithms.
    pub proposal: String,
    /// Virtual IP handed to the peer.
    pub virtual_ip: Option<String>,
    /// Virtual IPs handed to the peer, as a list (the form strongSwan's `list-sas` uses).
    #[serde(default)]
    pub remote_vips: Vec<String>,
    /// Whether the peer is behind a NAT.
    pub nat_remote: bool,
    /// Seconds since the SA was established.
    pub established_secs: Option<u64>,
    /// Child SAs.
    pub children: Vec<ChildSaView>,
}

/// `ikectl status`.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct StatusView {
    /// Daemon version.
    pub version: String,
    /// Process id.
    pub pid: u32,
    /// Seconds since start.
    pub uptime_secs: u64,
    /// Configuration file.
    pub config: String,
    /// Bound UDP sockets.
    pub listen: Vec<String>,
    /// `xfrm` or `memory`.
    pub dataplane: String,
    /// Which protocol core runs.
    pub protocol_core: String,
    /// Connection names.
    pub connections: Vec<String>,
    /// Established IKE SAs.
    pub ike_sas: usize,
    /// Half-open IKE SAs.
    pub half_open: usize,
    /// Child SAs.
    pub child_sas: usize,
    /// SAs in the data plane (two per Child SA), when the core has one.
    #[serde(default)]
    pub dataplane_sas: Option<usize>,
    /// `local`, or the node name when clustered.
    pub node: String,
    /// Successful reloads since start.
    pub reloads: u64,
}

/// One member in [`ClusterView`].
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct MemberView {
    /// Node name.
    pub node: String,
    /// Live in this node's membership view (heartbeat).
    pub live: bool,
    /// Draining: takes no new SAs.
    pub draining: bool,
    /// IKE SAs it owns, by this node's records.
    pub sas_owned: usize,
    /// Replication session up (always true for this node).
    pub connected: bool,
    /// Records queued or unacknowledged toward it; `None` for this node.
    pub replication_lag: Option<usize>,
}

/// Counters in [`ClusterView`] (since this node started).
#[derive(Clone, PartialEq, Eq, Debug, Default, Serialize, Deserialize)]
pub struct ClusterCountersView {
    /// IKE datagrams left to the node that owns them.
    pub not_owner: u64,
    /// IKE SAs taken over after their owner's death.
    pub takeovers: u64,
    /// RFC 6311 IKEV2_MESSAGE_ID_SYNC requests started.
    pub syncs_started: u64,
    /// RFC 6311 syncs the peer answered.
    pub syncs_completed: u64,
    /// RFC 6311 sync requests sent again (a new request, higher M1) after no answer.
    #[serde(default)]
    pub sync_retransmissions: u64,
    /// RFC 6311 syncs never answered (the IKE SA was deleted).
    #[serde(default)]
    pub syncs_failed: u64,
    /// RFC 6311 syncs not sent after a takeover: AEAD IKE SAs whose peer already
    /// answered our requests (a Message ID 0 response would repeat its IV).
    #[serde(default)]
    pub syncs_skipped: u64,
    /// `sync = "ack"` holds that timed out (the response left unacknowledged).
    pub ack_timeouts: u64,
    /// IKE datagrams held for acknowledgement now.
    pub held_datagrams: usize,
    /// Transfers out completed.
    pub transfers_out: u64,
    /// Transfers in.
    pub transfers_in: u64,
    /// Outbound sequence-number leases renewed.
    pub lease_renewals: u64,
    /// Child SA rekeys after a large sequence jump (RFC 6311 §5.2).
    pub jump_rekeys: u64,
    /// Outbound SAs moved above the sequence numbers another node used on them while
    /// both owned them (a partition healed).
    #[serde(default)]
    pub lease_moves: u64,
    /// IKE SAs whose Message IDs moved up to those another node used on them while
    /// both owned them (a partition healed).
    #[serde(default)]
    pub message_id_merges: u64,
}

/// `ikectl cluster`.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct ClusterView {
    /// This node.
    pub node: String,
    /// Membership epoch (changes counted by the heartbeat).
    pub epoch: u64,
    /// Every configured node.
    pub members: Vec<MemberView>,
    /// IKE SA records held (every owner's).
    pub records: usize,
    /// Transfers queued by drain or rebalancing, not started yet.
    pub queued_transfers: usize,
    /// Address pools hand out nothing until this node holds the live members' records
    /// (a restarted node must not lease an address a survivor still holds).
    #[serde(default)]
    pub pools_paused: bool,
    /// Counters.
    pub counters: ClusterCountersView,
}

/// Why a control request failed on the client side.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The daemon is not running (or the socket path is wrong).
    #[error("cannot connect to batond at {path}: {source} (is batond running? use --socket PATH)")]
    Connect {
        /// Socket path.
        path: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// Reading or writing the socket failed.
    #[error("control socket I/O failed: {0}")]
    Io(#[from] std::io::Error),
    /// The daemon's answer was not valid.
    #[error("invalid answer from batond: {0}")]
    Protocol(String),
    /// The daemon refused the command.
    #[error("{0}")]
    Refused(String),
}

/// Sends one request and waits for its answer (blocking; for `ikectl` and tests).
pub fn request(
    socket: &Path,
    req: &Request,
    timeout: Duration,
) -> Result<serde_json::Value, ClientError> {
    let stream = UnixStream::connect(socket).map_err(|source| ClientError::Connect {
        path: socket.display().to_string(),
        source,
    })?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    let mut line = serde_json::to_vec(req).map_err(|e| ClientError::Protocol(e.to_string()))?;
    line.push(b'\n');
    (&stream).write_all(&line)?;
    let mut reader = BufReader::new(&stream).take(MAX_LINE as u64);
    let mut answer = String::new();
    reader.read_line(&mut answer)?;
    if answer.is_empty() {
        return Err(ClientError::Protocol(
            "connection closed without an answer".into(),
        ));
    }
    let resp: Response =
        serde_json::from_str(&answer).map_err(|e| ClientError::Protocol(e.to_string()))?;
    if resp.ok {
        Ok(resp.result.unwrap_or(serde_json::Value::Null))
    } else {
        Err(ClientError::Refused(
            resp.error.unwrap_or_else(|| "unknown error".into()),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_have_a_stable_wire_form() {
        let cases = [
            (Request::Status, r#"{"cmd":"status"}"#),
            (Request::ListSas, r#"{"cmd":"list-sas"}"#),
            (
                Request::Show { sa: "ab".into() },
                r#"{"cmd":"show","sa":"ab"}"#,
            ),
            (
                Request::Transfer {
                    sa: "ab".into(),
                    to: "gw2".into(),
                },
                r#"{"cmd":"transfer","sa":"ab","to":"gw2"}"#,
            ),
            (
                Request::Drain { node: "gw2".into() },
                r#"{"cmd":"drain","node":"gw2"}"#,
            ),
        ];
        for (req, text) in cases {
            assert_eq!(serde_json::to_string(&req).unwrap(), text);
            assert_eq!(serde_json::from_str::<Request>(text).unwrap(), req);
        }
        assert!(serde_json::from_str::<Request>(r#"{"cmd":"format-disk"}"#).is_err());
        assert_eq!(
            serde_json::to_string(&Response::err("x")).unwrap(),
            r#"{"ok":false,"error":"x"}"#
        );
    }
}
