//! Which sessions the channel keeps: tie-break, restarts, stale incarnations,
//! impostor names. Uses the real driver on 127.0.0.1 and a hand-driven client.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use cluster::channel::{Channel, ChannelConfig, ChannelEvent};
use cluster::transport::{Hello, PROTOCOL_VERSION, Role, Session, SessionEvent};
use cluster::{ClusterKey, NodeId};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio::sync::mpsc::Receiver;

fn n(s: &str) -> NodeId {
    NodeId::new(s).unwrap()
}

async fn next_event(rx: &mut Receiver<ChannelEvent>) -> ChannelEvent {
    tokio::time::timeout(Duration::from_secs(5), rx.recv())
        .await
        .expect("event within 5 s")
        .expect("channel alive")
}

async fn no_event(rx: &mut Receiver<ChannelEvent>) {
    if let Ok(Some(e)) = tokio::time::timeout(Duration::from_millis(300), rx.recv()).await {
        panic!("unexpected event {e:?}");
    }
}

/// Connects as `name`/`incarnation`, completes handshake and Hello exchange.
async fn client(
    addr: SocketAddr,
    key: &ClusterKey,
    name: &str,
    incarnation: u64,
) -> (TcpStream, Session) {
    let mut s = TcpStream::connect(addr).await.unwrap();
    let hello = Hello {
        node: n(name),
        incarnation,
        version: PROTOCOL_VERSION,
    };
    let mut sess = Session::new(Role::Initiator, hello, key).unwrap();
    let mut buf = vec![0u8; 70_000];
    loop {
        let out = sess.take_output();
        s.write_all(&out).await.unwrap();
        if let Some(SessionEvent::Established(h)) = sess.poll_event() {
            assert_eq!(h.node, n("b"));
            // Make sure our Hello went out before returning.
            let out = sess.take_output();
            s.write_all(&out).await.unwrap();
            return (s, sess);
        }
        let k = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf))
            .await
            .unwrap()
            .unwrap();
        assert!(k > 0, "closed during handshake");
        sess.handle_input(&buf[..k]).unwrap();
    }
}

/// Whether the server closes the connection within 2 s.
async fn closed_by_server(s: &mut TcpStream) -> bool {
    let mut buf = vec![0u8; 70_000];
    loop {
        match tokio::time::timeout(Duration::from_secs(2), s.read(&mut buf)).await {
            Err(_) => return false,
            Ok(Ok(0) | Err(_)) => return true,
            Ok(Ok(_)) => continue,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_replacement_rules() {
    let key = ClusterKey::generate();
    let la = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let lb = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let (aa, ab) = (la.local_addr().unwrap(), lb.local_addr().unwrap());
    drop((la, lb));
    let cfg_b = ChannelConfig::new(n("b"), ab, BTreeMap::from([(n("a"), aa)]), key.clone(), 100);
    let mut cfg_a =
        ChannelConfig::new(n("a"), aa, BTreeMap::from([(n("b"), ab)]), key.clone(), 100);
    // Keep the real a from redialing quickly once it loses its session.
    cfg_a.backoff_min = Duration::from_secs(30);
    cfg_a.backoff_max = Duration::from_secs(30);
    let (b, mut brx) = Channel::start(cfg_b).await.unwrap();
    let (a, mut arx) = Channel::start(cfg_a).await.unwrap();
    assert_eq!(
        next_event(&mut brx).await,
        ChannelEvent::PeerConnected {
            node: n("a"),
            incarnation: 100
        }
    );
    assert_eq!(
        next_event(&mut arx).await,
        ChannelEvent::PeerConnected {
            node: n("b"),
            incarnation: 100
        }
    );
    a.send(&n("b"), b"\x40hi".to_vec()).unwrap();
    assert_eq!(
        next_event(&mut brx).await,
        ChannelEvent::Message {
            node: n("a"),
            msg: b"\x40hi".to_vec()
        }
    );

    // An older incarnation of a is refused; the current session is untouched.
    let (mut s, _) = client(ab, &key, "a", 50).await;
    assert!(closed_by_server(&mut s).await);
    no_event(&mut brx).await;
    assert_eq!(b.connected(), vec![n("a")]);

    // A node that is not configured, and a node that should be dialed rather than
    // dial (c sorts after b), are refused.
    for name in ["z", "c"] {
        let (mut s, _) = client(ab, &key, name, 1).await;
        assert!(closed_by_server(&mut s).await, "{name}");
    }
    no_event(&mut brx).await;

    // A newer incarnation of a (a restart) replaces the session: Disconnected, then
    // Connected, and traffic goes to the new session.
    let old_session = b.session(&n("a")).expect("a session with a");
    let (mut s, mut sess) = client(ab, &key, "a", 200).await;
    assert_eq!(
        next_event(&mut brx).await,
        ChannelEvent::PeerDisconnected { node: n("a") }
    );
    assert_eq!(
        next_event(&mut brx).await,
        ChannelEvent::PeerConnected {
            node: n("a"),
            incarnation: 200
        }
    );
    // A message built for the replaced session is refused, not sent on the new one
    // (its replication sequence numbers would break the new session).
    let new_session = b.session(&n("a")).expect("the new session");
    assert_ne!(new_session, old_session);
    assert!(
        b.send_in_session(&n("a"), old_session, b"\x40stale".to_vec())
            .is_err()
    );
    b.send_in_session(&n("a"), new_session, b"\x40to the new a".to_vec())
        .unwrap();
    let mut buf = vec![0u8; 70_000];
    let got = loop {
        let k = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf))
            .await
            .unwrap()
            .unwrap();
        assert!(k > 0);
        sess.handle_input(&buf[..k]).unwrap();
        if let Some(SessionEvent::Message(m)) = sess.poll_event() {
            break m;
        }
    };
    assert_eq!(got, b"\x40to the new a");
    // The old session (the real a, incarnation 100) was closed by b.
    assert_eq!(
        next_event(&mut arx).await,
        ChannelEvent::PeerDisconnected { node: n("b") }
    );
    // Messages on the new session reach b.
    sess.send(b"\x40from the new a").unwrap();
    s.write_all(&sess.take_output()).await.unwrap();
    assert_eq!(
        next_event(&mut brx).await,
        ChannelEvent::Message {
            node: n("a"),
            msg: b"\x40from the new a".to_vec()
        }
    );
    // It goes away: b reports it.
    drop(s);
    assert_eq!(
        next_event(&mut brx).await,
        ChannelEvent::PeerDisconnected { node: n("a") }
    );
    assert!(b.send(&n("a"), b"\x40x".to_vec()).is_err());
    drop(a);
}
