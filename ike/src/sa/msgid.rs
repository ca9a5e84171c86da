//! Message IDs, the request window and the retransmission cache (RFC 7296 §2.1–§2.3).
//!
//! Each IKE SA keeps two counters: the Message ID of the next request we send, and the
//! Message ID we expect on the next request from the peer. As responder we keep the
//! last response (every datagram of it, fragments included) and resend it byte for byte
//! when the same request arrives again (§2.1). The cache is part of the exported state,
//! so a node that takes an SA over answers retransmissions exactly as the old owner did.
//!
//! We announce no SET_WINDOW_SIZE, so our receive window is 1 (§2.3): the only old
//! request we must recognise is the one just answered.

use std::time::Duration;

/// What to do with a request, judged by its Message ID alone.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RequestDisposition {
    /// The next request: process it.
    Process,
    /// A retransmission of the request we just answered: send these datagrams again.
    Retransmit(Vec<Vec<u8>>),
    /// Outside the window, or a retransmission whose response we no longer hold: drop it
    /// (§2.3: INVALID_MESSAGE_ID is never sent in a response).
    Drop,
}

/// The cached response to the last request we processed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CachedResponse {
    /// Message ID of the request (and of the response).
    pub message_id: u32,
    /// SHA-256 of the request datagram, so only a bitwise-identical retransmission (§2.1)
    /// gets the response again.
    pub request_hash: [u8; 32],
    /// The datagrams of the response (several when fragmented, RFC 7383).
    pub datagrams: Vec<Vec<u8>>,
}

/// A request we sent and whose response has not arrived yet (window 1 on our side too:
/// RFC 7296 §2.3 requires waiting unless the peer sent SET_WINDOW_SIZE).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutstandingRequest {
    /// Message ID.
    pub message_id: u32,
    /// The datagrams, resent unchanged on each retransmission.
    pub datagrams: Vec<Vec<u8>>,
    /// How many times it has been sent so far.
    pub transmissions: u32,
    /// Time since the first transmission at which the next retransmission is due.
    pub next_retransmit: Duration,
}

/// The Message ID state of one IKE SA, in both directions.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct MessageIdWindow {
    /// Message ID we expect on the next request from the peer.
    pub peer_next_request: u32,
    /// Message ID of the next request we send.
    pub our_next_request: u32,
    /// The response to the last request from the peer.
    pub last_response: Option<CachedResponse>,
    /// Our request awaiting its response.
    pub outstanding: Option<OutstandingRequest>,
    /// The highest Message ID the peer's window lets us use (`peer_window - 1` ahead of
    /// the oldest unanswered request). Kept for RFC 6311 M1 estimation.
    pub peer_window: u32,
    /// The highest M1 of an RFC 6311 sync request we accepted (§5.1: later requests must
    /// carry a higher one).
    pub peer_sync_highest: Option<u32>,
    /// Our RFC 6311 Message ID sync request in flight (cluster side). Replicated before it
    /// is sent (§5.1 SHOULD), so a node taking over after a second failure never sends
    /// the same M1 or nonce again.
    pub sync_pending: Option<SyncAttempt>,
}

/// An IKEV2_MESSAGE_ID_SYNC request we sent (RFC 6311 §5.1, cluster side).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SyncAttempt {
    /// Nonce Data; the response must echo it.
    pub nonce: u32,
    /// EXPECTED_SEND_REQ_MESSAGE_ID we sent (M1).
    pub m1: u32,
    /// EXPECTED_RECV_REQ_MESSAGE_ID we sent (P1).
    pub p1: u32,
    /// The request's datagrams, resent unchanged on retransmission.
    pub datagrams: Vec<Vec<u8>>,
    /// Transmissions so far.
    pub transmissions: u32,
}

impl MessageIdWindow {
    /// The state right after IKE_SA_INIT (Message ID 0 used in both directions by the
    /// exchange itself, §2.2): the peer's next request is 1 when it was the initiator.
    pub fn after_ike_sa_init(we_are_initiator: bool) -> Self {
        if we_are_initiator {
            Self {
                peer_next_request: 0,
                our_next_request: 1,
                peer_window: 1,
                ..Self::default()
            }
        } else {
            Self {
                peer_next_request: 1,
                our_next_request: 0,
                peer_window: 1,
                ..Self::default()
            }
        }
    }

    /// Judges an incoming request by Message ID and content hash.
    pub fn classify_request(&self, message_id: u32, request_hash: &[u8; 32]) -> RequestDisposition {
        if message_id == self.peer_next_request {
            return RequestDisposition::Process;
        }
        match &self.last_response {
            Some(c) if c.message_id == message_id && &c.request_hash == request_hash => {
                RequestDisposition::Retransmit(c.datagrams.clone())
            }
            _ => RequestDisposition::Drop,
        }
    }

    /// Records the response to the request just processed and advances the window.
    ///
    /// Returns `false` if the Message ID space is exhausted (§2.2: the IKE SA must then
    /// be closed or rekeyed).
    pub fn record_response(
        &mut self,
        message_id: u32,
        request_hash: [u8; 32],
        datagrams: Vec<Vec<u8>>,
    ) -> bool {
        self.last_response = Some(CachedResponse {
            message_id,
            request_hash,
            datagrams,
        });
        match message_id.checked_add(1) {
            Some(next) => {
                self.peer_next_request = self.peer_next_request.max(next);
                true
            }
            None => false,
        }
    }

    /// Whether we may send a new request now.
    pub fn can_send_request(&self) -> bool {
        // RFC 6311: until the peer answered the sync, our next Message ID is not known.
        self.outstanding.is_none()
            && self.sync_pending.is_none()
            && self.our_next_request != u32::MAX
    }

    /// Takes the Message ID for a new request and remembers the request for
    /// retransmission. Returns `None` if a request is already outstanding or the ID space
    /// is exhausted.
    pub fn start_request(
        &mut self,
        datagrams_for: impl FnOnce(u32) -> Vec<Vec<u8>>,
    ) -> Option<u32> {
        if !self.can_send_request() {
            return None;
        }
        let mid = self.our_next_request;
        let datagrams = datagrams_for(mid);
        self.our_next_request = mid.saturating_add(1);
        self.outstanding = Some(OutstandingRequest {
            message_id: mid,
            datagrams,
            transmissions: 1,
            next_retransmit: RETRANSMIT_BASE,
        });
        Some(mid)
    }

    /// Matches an incoming response against the outstanding request; on a match the
    /// request is no longer outstanding.
    pub fn accept_response(&mut self, message_id: u32) -> bool {
        match &self.outstanding {
            Some(o) if o.message_id == message_id => {
                self.outstanding = None;
                true
            }
            _ => false,
        }
    }
}

/// First retransmission after this long (RFC 7296 §2.4 leaves the timers to us; these
/// follow common practice: 4 s, growing by 1.8 each time, 5 retransmissions).
pub const RETRANSMIT_BASE: Duration = Duration::from_secs(4);
/// Number of retransmissions before the peer is declared dead.
pub const RETRANSMIT_TRIES: u32 = 5;

/// The delay before retransmission number `n` (1-based) of a request.
pub fn retransmit_delay(n: u32) -> Duration {
    let mut d = RETRANSMIT_BASE.as_secs_f64();
    for _ in 1..n {
        d *= 1.8;
    }
    Duration::from_secs_f64(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn responder_window_processes_next_resends_last_drops_others() {
        let mut w = MessageIdWindow::after_ike_sa_init(false);
        let h1 = [1u8; 32];
        assert_eq!(w.classify_request(1, &h1), RequestDisposition::Process);
        assert_eq!(w.classify_request(0, &h1), RequestDisposition::Drop);
        assert_eq!(w.classify_request(2, &h1), RequestDisposition::Drop);
        assert!(w.record_response(1, h1, vec![vec![0xAA]]));
        assert_eq!(
            w.classify_request(1, &h1),
            RequestDisposition::Retransmit(vec![vec![0xAA]])
        );
        // Same Message ID, different bytes: not a retransmission.
        assert_eq!(w.classify_request(1, &[2u8; 32]), RequestDisposition::Drop);
        assert_eq!(w.classify_request(2, &h1), RequestDisposition::Process);
    }

    /// RFC 6311: while a sync is pending our next Message ID is unknown, so no request
    /// starts (one started then would reuse M1 after the response).
    #[test]
    fn no_request_while_a_sync_is_pending() {
        let mut w = MessageIdWindow::after_ike_sa_init(false);
        assert!(w.can_send_request());
        w.sync_pending = Some(SyncAttempt {
            nonce: 7,
            m1: 21,
            p1: 2,
            datagrams: Vec::new(),
            transmissions: 1,
        });
        assert!(!w.can_send_request());
        w.sync_pending = None;
        assert!(w.can_send_request());
    }

    #[test]
    fn exhausted_message_ids_are_reported() {
        let mut w = MessageIdWindow {
            peer_next_request: u32::MAX,
            ..Default::default()
        };
        assert!(!w.record_response(u32::MAX, [0; 32], vec![]));
    }

    #[test]
    fn one_outstanding_request_at_a_time() {
        let mut w = MessageIdWindow::after_ike_sa_init(false);
        assert_eq!(w.start_request(|mid| vec![vec![mid as u8]]), Some(0));
        assert_eq!(w.start_request(|_| vec![]), None);
        assert!(!w.accept_response(1));
        assert!(w.accept_response(0));
        assert_eq!(w.start_request(|_| vec![]), Some(1));
    }

    #[test]
    fn retransmit_delays_grow() {
        assert_eq!(retransmit_delay(1), Duration::from_secs(4));
        assert!(retransmit_delay(2) > retransmit_delay(1));
        assert!(retransmit_delay(5) < Duration::from_secs(60));
    }
}
