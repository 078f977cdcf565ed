//! TLS over loopback with certificates from `certs::init`: who gets in and who does not.

use std::path::Path;
use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::{TlsAcceptor, TlsConnector};

use super::certs::{init, issue_client, CertsPlan, Validity};
use super::*;

fn cluster_dir(dir: &Path, nodes: u64) -> TlsFiles {
    init(&CertsPlan::for_manifests(dir.to_path_buf(), nodes)).expect("certs init");
    TlsFiles::in_dir(dir, "node-1")
}

/// Runs one TLS handshake of `client` (server name `name`) against a node-1 server and
/// returns the client certificate the server saw, or the first side's error.
async fn handshake(server: &TlsFiles, client: &TlsFiles, name: &str) -> Result<Option<String>, String> {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let address = listener.local_addr().expect("address");
    let acceptor = TlsAcceptor::from(server_config(server, true).map_err(|e| e.to_string())?);
    let served = tokio::spawn(async move {
        let (stream, _) = listener.accept().await.map_err(|e| e.to_string())?;
        let mut tls = acceptor.accept(stream).await.map_err(|e| e.to_string())?;
        let mut byte = [0u8; 1];
        tls.read_exact(&mut byte).await.map_err(|e| e.to_string())?;
        let stream = Stream::from(tls);
        Ok::<_, String>(stream.peer_certificate().and_then(certificate_identity))
    });
    let connector = TlsConnector::from(client_config(client).map_err(|e| e.to_string())?);
    let stream = TcpStream::connect(address).await.expect("connect");
    let name = server_name(name).map_err(|e| e.to_string())?;
    let client_side = async {
        let mut tls = connector.connect(name, stream).await.map_err(|e| e.to_string())?;
        tls.write_all(b"x").await.map_err(|e| e.to_string())?;
        tls.flush().await.map_err(|e| e.to_string())?;
        Ok::<_, String>(tls)
    }
    .await;
    let server_side = served.await.expect("server task");
    let _tls = client_side?;
    server_side
}

#[tokio::test]
async fn a_client_of_the_same_authority_gets_in_under_its_name() {
    let dir = tempfile::tempdir().expect("tempdir");
    let node = cluster_dir(dir.path(), 3);
    let client = TlsFiles::in_dir(dir.path(), "client");
    let seen = handshake(&node, &client, "raftkv-node-1")
        .await
        .expect("handshake");
    assert_eq!(seen.as_deref(), Some("admin"));
    // Also by the addresses a client dials.
    handshake(&node, &client, "127.0.0.1").await.expect("by IP");
    handshake(&node, &client, "raftkv-0.raftkv-peer.raftkv.svc")
        .await
        .expect("by pod DNS");
}

#[tokio::test]
async fn a_server_is_verified_against_the_name_dialled() {
    let dir = tempfile::tempdir().expect("tempdir");
    let node = cluster_dir(dir.path(), 3);
    let client = TlsFiles::in_dir(dir.path(), "client");
    // Node 1's certificate does not name node 2: a dialer expecting node 2 refuses it.
    let error = handshake(&node, &client, "raftkv-node-2")
        .await
        .expect_err("wrong node");
    assert!(error.contains("certificate"), "{error}");
}

#[tokio::test]
async fn another_authority_and_expired_certificates_are_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let node = cluster_dir(dir.path(), 1);
    let other = tempfile::tempdir().expect("tempdir");
    init(&CertsPlan::for_manifests(other.path().to_path_buf(), 1)).expect("other CA");
    // The other CA's client, trusting our CA so that only the server's check can fail.
    let stranger = TlsFiles {
        ca: dir.path().join("ca.crt"),
        ..TlsFiles::in_dir(other.path(), "client")
    };
    let error = handshake(&node, &stranger, "raftkv-node-1")
        .await
        .expect_err("other CA");
    assert!(error.to_lowercase().contains("certificate"), "{error}");

    issue_client(dir.path(), "old", "old-client", Validity::Expired).expect("expired client");
    let expired = TlsFiles::in_dir(dir.path(), "old");
    let error = handshake(&node, &expired, "raftkv-node-1")
        .await
        .expect_err("expired");
    assert!(error.to_lowercase().contains("expired"), "{error}");
}

#[test]
fn init_extends_a_directory_under_the_same_authority() {
    let dir = tempfile::tempdir().expect("tempdir");
    let plan = CertsPlan::for_manifests(dir.path().to_path_buf(), 2);
    let first = init(&plan).expect("init");
    assert_eq!(first.len(), 3, "{first:?}");
    let ca = std::fs::read(dir.path().join("ca.crt")).expect("ca");
    let again = init(&CertsPlan { nodes: 3, ..plan }).expect("init again");
    assert_eq!(again, vec![dir.path().join("node-3.crt")]);
    assert_eq!(std::fs::read(dir.path().join("ca.crt")).expect("ca"), ca);
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(dir.path().join("node-3.key"))
        .expect("key")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    // Node 3's certificate (made in the second run) chains to the first run's CA.
    let node3 = TlsFiles::in_dir(dir.path(), "node-3");
    server_config(&node3, true).expect("node 3 loads");
}

#[test]
fn node_names_round_trip_and_partial_flags_are_refused() {
    assert_eq!(node_id_of_name(&node_name(12)), Some(12));
    assert_eq!(node_id_of_name("raftkv-node-"), None);
    assert_eq!(node_id_of_name("raftkv-node-1x"), None);
    assert_eq!(node_id_of_name("admin"), None);
    assert!(matches!(
        TlsFiles::from_flags(Some(Path::new("a")), None, None),
        Err(TlsError::IncompleteFlags)
    ));
    assert_eq!(TlsFiles::from_flags(None, None, None).expect("none"), None);
}

#[test]
fn reloading_picks_up_a_rotated_certificate() {
    let dir = tempfile::tempdir().expect("tempdir");
    let files = cluster_dir(dir.path(), 1);
    let tls = ReloadingTls::load(files.clone()).expect("load");
    let before = tls.server_mutual();
    assert!(
        Arc::ptr_eq(&before, &tls.server_mutual()),
        "unchanged files: same config"
    );
    std::thread::sleep(std::time::Duration::from_millis(1100));
    // Rotate: a new certificate and key for node 1 under the same CA.
    std::fs::remove_file(dir.path().join("node-1.crt")).expect("rm");
    init(&CertsPlan::for_manifests(dir.path().to_path_buf(), 1)).expect("reissue");
    assert!(
        !Arc::ptr_eq(&before, &tls.server_mutual()),
        "a rotated certificate is reloaded"
    );
    // Broken files keep the last good config.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    std::fs::write(dir.path().join("node-1.crt"), b"not a certificate").expect("break");
    let kept = tls.server_mutual();
    std::thread::sleep(std::time::Duration::from_millis(1100));
    assert!(Arc::ptr_eq(&kept, &tls.server_mutual()));
}
