//! Issue 11 with real processes over mutual TLS: each intruder is refused and logged,
//! and the cluster goes on serving. Peers without a certificate, with one of another
//! authority, with another node's, with an expired one; a client without a certificate;
//! a `read` client writing; a session id replayed by another client; 1,000 idle
//! connections; 100 half-sent largest frames (memory stays under a stated bound).

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use client::client::{Client, ClientError, ClientOptions};
use node::client_listener::{NODE_REQUEST_BYTES_IN_FLIGHT_MAX, REQUEST_PAYLOAD_BYTES_MAX};
use node::transport::{Handshake, HandshakeReply, PROTOCOL_VERSION};
use rustls::client::ClientConfig;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use wire::frame::encode_frame;
use wire::tls::certs::{init, issue_client, CertsPlan, Validity};
use wire::tls::{client_config, node_name, server_name, TlsFiles};
use wire::ReadConsistency;

use crate::support::{TestCluster, WAIT_TIMEOUT};

fn options() -> ClientOptions {
    ClientOptions {
        request_timeout: Duration::from_secs(2),
        deadline: WAIT_TIMEOUT,
    }
}

/// The cluster's CA, trusted by an intruder's config so that only the node's checks can
/// refuse it.
fn roots(certs: &Path) -> rustls::RootCertStore {
    let pem = std::fs::read(certs.join("ca.crt")).expect("ca.crt");
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(&pem) {
        roots
            .add(cert.expect("a PEM certificate"))
            .expect("a CA certificate");
    }
    roots
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A TLS client that presents no certificate.
fn anonymous_config(certs: &Path) -> Arc<ClientConfig> {
    let config = ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .expect("TLS 1.3")
        .with_root_certificates(roots(certs))
        .with_no_client_auth();
    Arc::new(config)
}

/// Presents `files`' certificate but trusts the cluster's CA.
fn config_trusting_cluster(files: TlsFiles, certs: &Path) -> Arc<ClientConfig> {
    client_config(&TlsFiles {
        ca: certs.join("ca.crt"),
        ..files
    })
    .expect("intruder's TLS files load")
}

/// Dials node `target`'s peer port with `config`, claims to be node `claimed_id` and
/// returns the reply, or why there was none.
async fn dial_as_peer(
    test: &TestCluster,
    target: u64,
    config: Arc<ClientConfig>,
    claimed_id: u64,
) -> Result<HandshakeReply, String> {
    let stream = TcpStream::connect(&test.cluster.node(target).peer_address)
        .await
        .map_err(|e| e.to_string())?;
    let name = server_name(&node_name(target)).map_err(|e| e.to_string())?;
    let mut tls = TlsConnector::from(config)
        .connect(name, stream)
        .await
        .map_err(|e| format!("TLS: {e}"))?;
    let handshake = encode_frame(&Handshake {
        protocol_version: PROTOCOL_VERSION,
        cluster_name: test.name().to_string(),
        cluster_id: None,
        node_id: claimed_id,
        incarnation: 1,
        client_address: "127.0.0.1:1".into(),
        probe: false,
    })
    .expect("encodes");
    tls.write_all(&handshake)
        .await
        .map_err(|e| format!("write: {e}"))?;
    tls.flush().await.map_err(|e| format!("flush: {e}"))?;
    let mut reply = Vec::new();
    let read = async {
        loop {
            if let Some((answer, _)) =
                wire::frame::parse_frame::<HandshakeReply>(&reply).map_err(|e| e.to_string())?
            {
                return Ok(answer);
            }
            let mut chunk = [0u8; 4096];
            match tls.read(&mut chunk).await {
                Ok(0) => return Err(format!("closed after {} bytes", reply.len())),
                Ok(read) => reply.extend_from_slice(&chunk[..read]),
                Err(error) => return Err(format!("read: {error}")),
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(10), read)
        .await
        .map_err(|_| "no answer".to_string())?
}

/// Waits until node `id`'s log has grown a line containing `text`.
async fn logged(test: &TestCluster, id: u64, text: &str) {
    let deadline = tokio::time::Instant::now() + WAIT_TIMEOUT;
    while !test.cluster.log_of(id).contains(text) {
        if tokio::time::Instant::now() > deadline {
            test.fail(&format!("node {id} never logged {text:?}"));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A write and a linearizable read through the cluster succeed.
async fn serves(test: &TestCluster, key: &str) {
    let mut client = test.client(options());
    client
        .put(key.as_bytes().to_vec(), b"v".to_vec())
        .await
        .unwrap_or_else(|e| test.fail(&format!("put {key}: {e}")));
    let value = client
        .get(key.as_bytes().to_vec(), ReadConsistency::Linearizable)
        .await
        .unwrap_or_else(|e| test.fail(&format!("get {key}: {e}")));
    test.check(value.as_deref() == Some(&b"v"[..]), || {
        format!("{key} reads back {value:?}")
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peers_without_the_right_certificate_are_refused_and_logged() {
    let test = TestCluster::start_with("tls-peers", 3, 1_000, true, &[]).await;
    let ids = test.ids();
    test.wait_for_leader(&ids).await;
    let certs = test.cluster.certs_dir();

    // No certificate at all.
    let outcome = dial_as_peer(&test, 1, anonymous_config(&certs), 2).await;
    assert!(outcome.is_err(), "a peer without a certificate got {outcome:?}");
    logged(&test, 1, "TLS handshake failed").await;

    // A certificate of another authority (for node 2's very name).
    let other = tempfile::tempdir().expect("tempdir");
    init(&CertsPlan::for_manifests(other.path().to_path_buf(), 3)).expect("another CA");
    let outcome = dial_as_peer(
        &test,
        1,
        config_trusting_cluster(TlsFiles::in_dir(other.path(), "node-2"), &certs),
        2,
    )
    .await;
    assert!(outcome.is_err(), "another CA's certificate got {outcome:?}");

    // Node 3's own certificate, claiming to be node 2.
    let outcome = dial_as_peer(
        &test,
        1,
        client_config(&TlsFiles::in_dir(&certs, "node-3")).expect("node 3"),
        2,
    )
    .await;
    match outcome {
        Ok(HandshakeReply::Refused { reason }) => {
            assert!(reason.contains("does not name raftkv-node-2"), "{reason}")
        }
        other => panic!("node 3's certificate claiming node 2 got {other:?}"),
    }
    logged(&test, 1, "does not name raftkv-node-2").await;

    // An expired certificate for node 2's name.
    let expired_dir = tempfile::tempdir().expect("tempdir");
    std::fs::copy(certs.join("ca.crt"), expired_dir.path().join("ca.crt")).expect("copy ca");
    std::fs::copy(certs.join("ca.key"), expired_dir.path().join("ca.key")).expect("copy ca key");
    wire::tls::certs::Authority::open_or_create(expired_dir.path())
        .expect("the cluster's CA")
        .issue(expired_dir.path(), "node-2", &[node_name(2)], Validity::Expired)
        .expect("an expired node 2 certificate");
    let outcome = dial_as_peer(
        &test,
        1,
        client_config(&TlsFiles::in_dir(expired_dir.path(), "node-2")).expect("expired loads"),
        2,
    )
    .await;
    assert!(outcome.is_err(), "an expired certificate got {outcome:?}");

    // None of it harmed the cluster.
    serves(&test, "after-intruders").await;
    test.wait_for_convergence(&ids).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_are_their_certificates_and_their_roles() {
    let roles_dir = tempfile::tempdir().expect("tempdir");
    let roles = roles_dir.path().join("roles");
    std::fs::write(&roles, "admin admin\nreader read\nalice write\nmallory write\n").expect("roles file");
    let extra = ["--client-roles".to_string(), roles.display().to_string()];
    let test = TestCluster::start_with("tls-clients", 3, 1_000, true, &extra).await;
    let ids = test.ids();
    test.wait_for_leader(&ids).await;
    let certs = test.cluster.certs_dir();
    for name in ["reader", "alice", "mallory"] {
        issue_client(&certs, name, name, Validity::Years(1)).expect("client certificate");
    }
    let endpoints = client::parse_endpoints(&test.cluster.endpoints().join(",")).expect("endpoints");
    let client_as = |name: &str, client_id: u64| {
        let tls = client_config(&TlsFiles::in_dir(&certs, name)).expect("client TLS");
        Client::new(endpoints.clone(), options())
            .expect("endpoints")
            .with_client_id(client_id)
            .with_tls(tls)
    };

    // Without a certificate: refused at the handshake, and logged.
    let quick = ClientOptions {
        request_timeout: Duration::from_secs(1),
        deadline: Duration::from_secs(3),
    };
    let mut anonymous = Client::new(endpoints.clone(), quick)
        .expect("endpoints")
        .with_tls(anonymous_config(&certs));
    let outcome = anonymous.put(b"k".to_vec(), b"anonymous".to_vec()).await;
    assert!(
        outcome.is_err(),
        "a client without a certificate wrote: {outcome:?}"
    );
    logged(&test, 1, "refused a client connection: TLS handshake failed").await;

    // A reader reads, but may not write or run admin requests.
    let mut reader = client_as("reader", 11);
    reader
        .get(b"k".to_vec(), ReadConsistency::Linearizable)
        .await
        .expect("a reader reads");
    match reader.put(b"k".to_vec(), b"reader".to_vec()).await {
        Err(ClientError::PermissionDenied { message }) => {
            assert!(message.contains("needs write"), "{message}")
        }
        other => panic!("a reader's write got {other:?}"),
    }
    let endpoint = test.endpoint(1).clone();
    assert!(matches!(
        reader.status(&endpoint).await,
        Err(ClientError::PermissionDenied { .. })
    ));

    // Mallory replays Alice's client id with the sequence Alice will use next: under the
    // old protocol Alice's write would have been answered from Mallory's and never applied.
    let alice_id = 0xA11CE;
    let mut mallory = client_as("mallory", alice_id);
    mallory
        .put(b"account".to_vec(), b"mallory".to_vec())
        .await
        .expect("mallory may write");
    let mut alice = client_as("alice", alice_id);
    alice
        .put(b"account".to_vec(), b"alice".to_vec())
        .await
        .expect("alice writes");
    let value = alice
        .get(b"account".to_vec(), ReadConsistency::Linearizable)
        .await
        .expect("read");
    assert_eq!(
        value.as_deref(),
        Some(&b"alice"[..]),
        "alice's write was applied, not swallowed"
    );

    serves(&test, "after-clients").await;
}

/// Resident memory of a process, in bytes.
fn rss_bytes(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("/proc status");
    let kib: u64 = status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS");
    kib * 1024
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_sockets_and_half_sent_frames_neither_lock_out_nor_bloat_a_node() {
    let mut test = TestCluster::start_with("tls-bounds", 3, 1_000, true, &[]).await;
    let ids = test.ids();
    let leader = test.wait_for_leader(&ids).await.id;
    let certs = test.cluster.certs_dir();

    // 1,000 idle sockets: half on the leader's peer port, half on its client port.
    let mut idle = Vec::new();
    for index in 0..1_000 {
        let node = test.cluster.node(leader);
        let address = if index % 2 == 0 {
            &node.peer_address
        } else {
            &node.client_address
        };
        idle.push(TcpStream::connect(address).await.expect("connect"));
    }
    // A follower restarted now must get back in through the flooded peer port, and
    // clients through the flooded client port.
    let follower = *ids.iter().find(|&&id| id != leader).expect("a follower");
    test.cluster.kill(follower).expect("kill");
    test.cluster.start_node(follower).expect("restart");
    serves(&test, "with-idle-sockets").await;
    test.wait_for_convergence(&ids).await;
    drop(idle);

    // 100 authenticated connections each send half of a largest request frame and stop.
    let pid = test.cluster.pid(leader).expect("the leader runs");
    let before = rss_bytes(pid);
    let admin = client_config(&TlsFiles::in_dir(&certs, "client")).expect("admin");
    let mut half_sent = Vec::new();
    for _ in 0..100 {
        let stream = TcpStream::connect(&test.cluster.node(leader).client_address)
            .await
            .expect("connect");
        let name = server_name("127.0.0.1").expect("name");
        let mut tls = TlsConnector::from(admin.clone())
            .connect(name, stream)
            .await
            .expect("TLS");
        let payload_bytes = u32::try_from(REQUEST_PAYLOAD_BYTES_MAX).expect("fits");
        tls.write_all(&payload_bytes.to_be_bytes()).await.expect("header");
        // Non-zero bytes, so that the pages are really touched.
        tls.write_all(&vec![0x5A; REQUEST_PAYLOAD_BYTES_MAX / 2])
            .await
            .expect("half a payload");
        tls.flush().await.expect("flush");
        half_sent.push(tls);
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let during = rss_bytes(pid);
    let growth = during.saturating_sub(before);
    // The bound: the node-wide request budget plus 16 MiB for TLS state and allocator
    // slack. Without the budget the 100 half frames alone would be 100 MiB.
    let bound = (NODE_REQUEST_BYTES_IN_FLIGHT_MAX + 16 * 1024 * 1024) as u64;
    eprintln!(
        "leader RSS {} MiB before, {} MiB with 100 half-sent frames (bound: +{} MiB)",
        before >> 20,
        during >> 20,
        bound >> 20
    );
    assert!(
        growth <= bound,
        "RSS grew by {} MiB, over the {} MiB bound",
        growth >> 20,
        bound >> 20
    );
    // The stalled frames are dropped after the frame deadline; the cluster serves.
    serves(&test, "with-half-sent-frames").await;
    drop(half_sent);
    serves(&test, "after-half-sent-frames").await;
}

/// The certificate node 1 presents to a new client connection, as DER.
async fn served_certificate(test: &TestCluster, certs: &Path) -> Vec<u8> {
    let stream = TcpStream::connect(&test.cluster.node(1).client_address)
        .await
        .expect("connect");
    let admin = client_config(&TlsFiles::in_dir(certs, "client")).expect("admin");
    let name = server_name("127.0.0.1").expect("name");
    let tls = TlsConnector::from(admin)
        .connect(name, stream)
        .await
        .expect("TLS");
    let certificates = tls.get_ref().1.peer_certificates().expect("a server certificate");
    certificates[0].as_ref().to_vec()
}

fn certificate_file(path: &Path) -> Vec<u8> {
    let pem = std::fs::read(path).expect("certificate file");
    CertificateDer::from_pem_slice(&pem)
        .expect("PEM")
        .as_ref()
        .to_vec()
}

/// A certificate rotated in place (as a Secret update or cert-manager does) is served to
/// new connections without a restart, and the cluster keeps working across it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotated_certificate_is_served_without_a_restart() {
    let test = TestCluster::start_with("tls-rotation", 3, 1_000, true, &[]).await;
    let ids = test.ids();
    test.wait_for_leader(&ids).await;
    let certs = test.cluster.certs_dir();
    let before = certificate_file(&certs.join("node-1.crt"));
    let pid = test.cluster.pid(1);
    assert_eq!(served_certificate(&test, &certs).await, before);

    std::fs::remove_file(certs.join("node-1.crt")).expect("remove");
    init(&CertsPlan::for_manifests(certs.clone(), 3)).expect("reissue node 1");
    let after = certificate_file(&certs.join("node-1.crt"));
    assert_ne!(before, after, "a new certificate");
    // Files are looked at once a second at most.
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    assert_eq!(
        served_certificate(&test, &certs).await,
        after,
        "new connections get the new certificate"
    );
    logged(&test, 1, "TLS files changed").await;
    assert_eq!(test.cluster.pid(1), pid, "node 1 was not restarted");
    serves(&test, "after-rotation").await;
    test.wait_for_convergence(&ids).await;
}
