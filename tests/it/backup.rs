//! `usher backup` while 1,000 webhooks are being delivered, `usher restore` into a fresh folder,
//! and Usher started on it: the restored users are the source's at the backup's moment (each
//! subscriber before or after their payment, never in between), the key is the same, and every
//! recorded webhook has its payment. Restore refuses a non-empty folder; with PostgreSQL the
//! archive holds the key alone.

use std::os::unix::fs::PermissionsExt as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use usher::store::Db;

use crate::helpers::bin::{Usher, free_port};
use crate::helpers::load;
use crate::helpers::{drop_postgres_database, fresh_postgres_database};

const SUBSCRIBERS: usize = 1000;
const SECRET: &str = "whsec_backup_test_secret";
const CONNECTIONS: usize = 4;

fn with_stripe(usher: Usher, port: u16) -> Usher {
    usher
        .env("USHER_WEB__ADDR", format!("127.0.0.1:{port}"))
        .env("USHER_PAYMENTS__STRIPE__SECRET_KEY", "sk_test_backup")
        .env("USHER_PAYMENTS__STRIPE__WEBHOOK_SECRET", SECRET)
        // Never called: webhooks need only the signing secret.
        .env(
            "USHER_PAYMENTS__STRIPE__API_BASE_URL",
            "http://127.0.0.1:9/",
        )
}

async fn open(path: &std::path::Path) -> Db {
    Db::connect_url(&format!("sqlite://{}", path.display()), 2)
        .await
        .unwrap()
}

/// Sends every delivery over `CONNECTIONS` connections, a little paced; counts the 200s.
fn deliver(
    port: u16,
    subscriptions: &[String],
    acked: &Arc<AtomicUsize>,
) -> Vec<tokio::task::JoinHandle<()>> {
    let deliveries: Arc<Vec<(Vec<u8>, String)>> = Arc::new(
        subscriptions
            .iter()
            .enumerate()
            .map(|(i, sub)| load::invoice_paid(i, sub, SECRET))
            .collect(),
    );
    let next = Arc::new(AtomicUsize::new(0));
    (0..CONNECTIONS)
        .map(|_| {
            let (deliveries, next, acked) = (deliveries.clone(), next.clone(), acked.clone());
            tokio::spawn(async move {
                let client = reqwest::Client::new();
                let url = format!("http://127.0.0.1:{port}/webhooks/stripe");
                while let Some((body, signature)) =
                    deliveries.get(next.fetch_add(1, Ordering::SeqCst))
                {
                    let response = client
                        .post(&url)
                        .header("stripe-signature", signature)
                        .header("content-type", "application/json")
                        .body(body.clone())
                        .send()
                        .await
                        .unwrap();
                    assert_eq!(response.status(), 200);
                    assert_eq!(response.text().await.unwrap(), "ok\n");
                    acked.fetch_add(1, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(4)).await;
                }
            })
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_backup_under_load_restores_the_users_of_its_moment() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let source = with_stripe(Usher::new(dir.path()), port);
    source.ok(&["migrate"]).await;
    let db_path = dir.path().join("usher-data/usher.db");
    let db = open(&db_path).await;
    let subscriptions = load::seed(&db, i64::try_from(SUBSCRIBERS).unwrap()).await;
    db.close().await;
    let before = source.ok(&["users", "export", "--csv", "-"]).await;

    let running = source.spawn(&["--roles", "web"]);
    let instance = running.wait_healthy(port).await;
    let acked = Arc::new(AtomicUsize::new(0));
    let workers = deliver(port, &subscriptions, &acked);
    while acked.load(Ordering::SeqCst) < 150 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let archive = dir.path().join("usher-backup.tar.gz");
    let acked_before = acked.load(Ordering::SeqCst);
    let said = source.ok(&["backup", archive.to_str().unwrap()]).await;
    let acked_after = acked.load(Ordering::SeqCst);
    assert!(said.contains("Backed up the SQLite database"), "{said}");
    for worker in workers {
        worker.await.unwrap();
    }
    assert_eq!(acked.load(Ordering::SeqCst), SUBSCRIBERS);
    assert!(
        acked_after < SUBSCRIBERS,
        "the backup must finish while deliveries still come ({acked_after} of {SUBSCRIBERS} acknowledged)"
    );
    let after = source.ok(&["users", "export", "--csv", "-"]).await;
    let (status, log) = running.stop().await;
    assert!(status.success(), "{log}");
    assert_eq!(
        std::fs::metadata(&archive).unwrap().permissions().mode() & 0o777,
        0o600,
        "the archive holds the key"
    );

    // Restore refuses the source's own, non-empty folder, and changes nothing there.
    let data = dir.path().join("usher-data");
    let listing = |p: &std::path::Path| {
        let mut names: Vec<_> = std::fs::read_dir(p)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        names.sort();
        names
    };
    let files_before = listing(&data);
    let refused = source
        .output(&[
            "restore",
            archive.to_str().unwrap(),
            "--data-dir",
            data.to_str().unwrap(),
        ])
        .await;
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("is not empty"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
    assert_eq!(listing(&data), files_before);

    let elsewhere = tempfile::tempdir().unwrap();
    let fresh = elsewhere.path().join("restored");
    let restored_said = source
        .ok(&[
            "restore",
            archive.to_str().unwrap(),
            "--data-dir",
            fresh.to_str().unwrap(),
        ])
        .await;
    assert!(
        restored_said.contains("Restored the SQLite database"),
        "{restored_said}"
    );
    let port2 = free_port();
    let restored = with_stripe(Usher::new(elsewhere.path()), port2)
        .env("USHER_DATA_DIR", fresh.to_str().unwrap());
    let running = restored.spawn(&["--roles", "web"]);
    assert_eq!(
        running.wait_healthy(port2).await,
        instance,
        "the restored installation has the source's key"
    );
    let restored_export = restored.ok(&["users", "export", "--csv", "-"]).await;
    let (status, log) = running.stop().await;
    assert!(status.success(), "{log}");

    // Each subscriber is as before their payment or as after it; the paid ones are those the
    // source had acknowledged around the backup.
    let (before, after, restored_lines): (Vec<_>, Vec<_>, Vec<_>) = (
        before.lines().collect(),
        after.lines().collect(),
        restored_export.lines().collect(),
    );
    assert_eq!(restored_lines.len(), SUBSCRIBERS + 1);
    assert_eq!(restored_lines[0], before[0]);
    let mut paid = 0;
    for i in 1..=SUBSCRIBERS {
        assert_ne!(before[i], after[i], "every subscriber was paid in the end");
        if restored_lines[i] == after[i] {
            paid += 1;
        } else {
            assert_eq!(restored_lines[i], before[i], "line {i} is torn");
        }
    }
    assert!(
        (acked_before..=acked_after + CONNECTIONS).contains(&paid),
        "{paid} paid in the backup; {acked_before}..{acked_after} acknowledged around it"
    );
    let db = open(&fresh.join("usher.db")).await;
    assert_eq!(
        usize::try_from(load::count(&db, "webhook_event").await).unwrap(),
        paid,
        "every recorded webhook has its payment, and only those"
    );
    assert_eq!(
        usize::try_from(load::count(&db, "payment").await).unwrap(),
        paid
    );
    db.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_postgresql_the_backup_holds_the_key_alone_and_says_to_use_pg_dump() {
    let (url, name) = fresh_postgres_database().await;
    let dir = tempfile::tempdir().unwrap();
    let usher = Usher::new(dir.path()).env("USHER_DATABASE__URL", url.clone());
    usher.ok(&["migrate"]).await;
    let missing_key = usher
        .output(&["backup", dir.path().join("none.tar.gz").to_str().unwrap()])
        .await;
    assert!(
        !missing_key.status.success(),
        "no key yet: nothing to back up"
    );
    usher.ok(&["plex-account", "list"]).await; // creates the key
    let archive = dir.path().join("pg.tar.gz");
    let said = usher.ok(&["backup", archive.to_str().unwrap()]).await;
    assert!(said.contains("back it up with pg_dump"), "{said}");
    let again = usher.output(&["backup", archive.to_str().unwrap()]).await;
    assert!(
        !again.status.success(),
        "an existing archive is never overwritten"
    );

    let fresh = dir.path().join("restored");
    let restored = usher
        .ok(&[
            "restore",
            archive.to_str().unwrap(),
            "--data-dir",
            fresh.to_str().unwrap(),
        ])
        .await;
    assert!(restored.contains("restore your pg_dump"), "{restored}");
    let mut names: Vec<_> = std::fs::read_dir(&fresh)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, ["secret.key"]);
    assert_eq!(
        std::fs::read(fresh.join("secret.key")).unwrap(),
        std::fs::read(dir.path().join("usher-data/secret.key")).unwrap()
    );
    drop_postgres_database(name);
}

#[tokio::test]
async fn restore_refuses_what_is_not_an_usher_backup_and_leaves_the_folder_empty() {
    let dir = tempfile::tempdir().unwrap();
    let usher = Usher::new(dir.path());
    let junk = dir.path().join("junk.tar.gz");
    std::fs::write(&junk, b"not an archive").unwrap();
    let target = dir.path().join("target");
    let refused = usher
        .output(&[
            "restore",
            junk.to_str().unwrap(),
            "--data-dir",
            target.to_str().unwrap(),
        ])
        .await;
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("not an Usher backup"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
    assert_eq!(std::fs::read_dir(&target).unwrap().count(), 0);
}
