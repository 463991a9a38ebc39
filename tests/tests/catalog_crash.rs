//! The catalog keeps every write it acknowledged across a SIGKILL, and its
//! audit chain still verifies afterwards.

use std::collections::BTreeSet;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use freeport_common::proto::catalog::v1 as pb;
use freeport_common::tls::{catalog_channel, DevPki};
use freeport_tests::{eventually, free_port, freeport_bin, Process};
use pb::catalog_service_client::CatalogServiceClient;

const WRITERS: usize = 8;

fn admin() -> Option<pb::Principal> {
    Some(pb::Principal {
        role: pb::Role::Admin.into(),
        organization: String::new(),
        key_id: "crash-test".into(),
        ..Default::default()
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_writes_survive_sigkill_and_the_audit_chain_verifies() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = tempfile::tempdir().unwrap();
    let pki = DevPki::ensure(&dir.path().join("certs")).unwrap();
    let port = free_port();
    let files = pki.files_for("catalog");
    let config = dir.path().join("catalog.toml");
    std::fs::write(
        &config,
        format!(
            "[catalog]\nlisten = \"127.0.0.1:{port}\"\nstore = \"sled://{}\"\ntls = {{ ca = {:?}, cert = {:?}, key = {:?} }}\n",
            dir.path().join("db").display(),
            files.ca,
            files.cert,
            files.key
        ),
    )
    .unwrap();
    let start = || {
        Process::spawn(
            "catalog",
            Command::new(freeport_bin())
                .args(["catalog", "--config"])
                .arg(&config),
            dir.path(),
        )
    };
    let tls = pki.files_for("link").load().unwrap();
    let client = CatalogServiceClient::new(
        catalog_channel(&format!("https://127.0.0.1:{port}"), &tls).unwrap(),
    );
    let ready = |client: CatalogServiceClient<_>| async move {
        eventually(Duration::from_secs(30), "the catalog to answer", || {
            let mut client = client.clone();
            async move {
                client
                    .list_organizations(pb::ListOrganizationsRequest {})
                    .await
                    .ok()
            }
        })
        .await
        .into_inner()
    };

    let mut catalog = start();
    ready(client.clone()).await;

    // A storm of writes from several clients; remember what was acknowledged.
    let acknowledged = Arc::new(Mutex::new(BTreeSet::new()));
    let mut writers = vec![];
    for writer in 0..WRITERS {
        let mut client = client.clone();
        let acknowledged = acknowledged.clone();
        writers.push(tokio::spawn(async move {
            for n in 0.. {
                let name = format!("org-{writer}-{n}");
                let request = pb::CreateOrganizationRequest {
                    actor: admin(),
                    name: name.clone(),
                    kind: pb::OrganizationKind::Partner.into(),
                    display_name: format!("Organization {writer}/{n}"),
                    contacts: vec![pb::Contact {
                        name: "Ops".into(),
                        email: format!("ops@{writer}-{n}.example"),
                    }],
                    trusted_cert_fingerprints: vec![],
                };
                match client.create_organization(request).await {
                    Ok(_) => {
                        acknowledged.lock().unwrap().insert(name);
                    }
                    Err(_) => return,
                }
            }
        }));
    }
    eventually(
        Duration::from_secs(60),
        "a few hundred acknowledged writes",
        || {
            let count = acknowledged.lock().unwrap().len();
            async move { (count >= 300).then_some(()) }
        },
    )
    .await;
    catalog.kill();
    for writer in writers {
        writer.await.unwrap();
    }
    let acknowledged = acknowledged.lock().unwrap().clone();

    let mut catalog = start();
    let stored: BTreeSet<String> = ready(client.clone())
        .await
        .organizations
        .into_iter()
        .map(|o| o.name)
        .collect();
    let lost: Vec<_> = acknowledged.difference(&stored).collect();
    assert!(
        lost.is_empty(),
        "{} acknowledged writes lost: {lost:?}",
        lost.len()
    );

    // The running catalog vouches for its chain, and so does the store on
    // its own once the catalog is down.
    let verified = client
        .clone()
        .verify_audit(pb::VerifyAuditRequest {})
        .await
        .unwrap()
        .into_inner();
    assert!(verified.intact, "{verified:?}");
    assert_eq!(
        verified.entries,
        stored.len() as u64,
        "one audit entry per organization"
    );
    catalog.kill();
    let offline = Command::new(freeport_bin())
        .args(["catalog", "verify-audit", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&offline.stdout);
    assert!(
        offline.status.success(),
        "{said}{}",
        String::from_utf8_lossy(&offline.stderr)
    );
    assert_eq!(
        said.trim(),
        format!("audit chain intact: {} entries", stored.len())
    );

    // Someone edits entry 5 behind the catalog's back: the check names it.
    {
        let db = sled::open(dir.path().join("db")).unwrap();
        let audit = db.open_tree("audit").unwrap();
        let key = 5u64.to_be_bytes();
        let mut entry: serde_json::Value =
            serde_json::from_slice(&audit.get(key).unwrap().unwrap()).unwrap();
        entry["record"]["actor"] = "admin:mallory".into();
        audit
            .insert(key, serde_json::to_vec(&entry).unwrap())
            .unwrap();
        db.flush().unwrap();
    }
    let tampered = Command::new(freeport_bin())
        .args(["catalog", "verify-audit", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&tampered.stderr);
    assert!(!tampered.status.success());
    assert!(said.contains("broken at entry 5"), "{said}");
}
