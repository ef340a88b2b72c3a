//! Importing from a spreadsheet through the `usher` binary: Usher's own export re-imports into a
//! fresh install and exports the same; every bad input is named by line and column and writes
//! nothing; `--skip-bad` imports the good rows and lists the bad; `--dry-run` writes nothing.

use usher::domain::{BillingPeriod, Currency, Money};
use usher::services::plex_admin::{self, PlanSpec};

use crate::helpers::bin::Usher;
use crate::helpers::world::{admin, owner_with_servers};
use crate::helpers::{Backend, TestApp};

/// An install with an owner, a server "Main" and the plans Standard and Premium.
async fn install(backend: Backend) -> TestApp {
    let app = TestApp::spawn(backend).await;
    let group = plex_admin::create_group(&app.app, &admin(), "Standard", false)
        .await
        .unwrap();
    for name in ["Standard", "Premium"] {
        plex_admin::create_plan(
            &app.app,
            &admin(),
            &PlanSpec {
                name: name.into(),
                price: Money::parse("8", Currency::parse("USD").unwrap()).unwrap(),
                period: BillingPeriod::Month,
                max_streams: 2,
                trial: false,
                groups: vec![group.into()],
            },
        )
        .await
        .unwrap();
    }
    owner_with_servers(&app, "owner@example.com", &["Main"], group).await;
    app
}

/// The binary on the app's database, data folder (its key) and fake plex.tv.
fn usher(app: &TestApp, dir: &std::path::Path) -> Usher {
    Usher::new(dir)
        .env("USHER_DATABASE__URL", app.database_url())
        .env(
            "USHER_DATA_DIR",
            app.app.settings.data_dir.display().to_string(),
        )
        .env("USHER_PLEX__BASE_URL", app.plex.base_url().as_str())
}

async fn count(app: &TestApp, sql: &str) -> i64 {
    let mut tx = app.app.db.read().await.unwrap();
    usher::on_tx!(&mut tx, |c| sqlx::query_scalar(sql)
        .fetch_one(c)
        .await
        .unwrap())
}

const GOOD: &str = "\
note,plex_email,plan,paid_until,discord_id,contact_email,server,permanent
cash,ana@example.com,Standard,2030-06-30,,ana.mail@example.com,Main,
,ben@example.com,premium,,555000111,,,yes
,cat@example.com,,,,,,
";

async fn a_csv_and_usher_s_own_export_re_import_into_a_fresh_install(backend: Backend) {
    let first = install(backend).await;
    let dir = tempfile::tempdir().unwrap();
    for email in ["ana@example.com", "ben@example.com", "cat@example.com"] {
        first.plex.add_user_account(email);
    }
    let file = dir.path().join("people.csv");
    std::fs::write(&file, GOOD).unwrap();
    let bin = usher(&first, dir.path());
    let dry = bin
        .ok(&["import", "csv", file.to_str().unwrap(), "--dry-run"])
        .await;
    assert!(dry.contains("Import 3 people"), "{dry}");
    assert!(dry.contains("Dry run: nothing was written."), "{dry}");
    assert_eq!(count(&first, "SELECT COUNT(*) FROM subscriber").await, 0);

    let out = bin.ok(&["import", "csv", file.to_str().unwrap()]).await;
    assert!(out.contains("Imported 3 people."), "{out}");
    assert_eq!(count(&first, "SELECT COUNT(*) FROM subscriber").await, 3);
    assert_eq!(
        count(
            &first,
            "SELECT COUNT(*) FROM subscriber WHERE discord_id = 555000111 AND permanent"
        )
        .await,
        1
    );
    assert_eq!(
        count(
            &first,
            "SELECT COUNT(*) FROM subscriber WHERE contact_email = 'ana.mail@example.com' AND notes = 'cash'"
        )
        .await,
        1
    );
    assert_eq!(
        count(
            &first,
            "SELECT COUNT(*) FROM payment WHERE reference = 'import' AND status = 'applied'"
        )
        .await,
        1
    );
    // Idempotent: the same file again adds nobody.
    let again = bin.ok(&["import", "csv", file.to_str().unwrap()]).await;
    assert!(again.contains("Nobody new to import."), "{again}");
    assert_eq!(count(&first, "SELECT COUNT(*) FROM subscriber").await, 3);

    let exported = bin.ok(&["users", "export", "--csv", "-"]).await;
    assert!(exported.lines().count() == 4, "{exported}");

    // A fresh install takes the export with no error and exports the same.
    let second = install(backend).await;
    for email in ["ana@example.com", "ben@example.com", "cat@example.com"] {
        second.plex.add_user_account(email);
    }
    let dir2 = tempfile::tempdir().unwrap();
    let export_file = dir2.path().join("export.csv");
    std::fs::write(&export_file, &exported).unwrap();
    let bin2 = usher(&second, dir2.path());
    let out = bin2
        .ok(&["import", "csv", export_file.to_str().unwrap()])
        .await;
    assert!(out.contains("Imported 3 people."), "{out}");
    let exported_again = bin2.ok(&["users", "export", "--csv", "-"]).await;
    assert_eq!(exported_again, exported);
    assert_eq!(
        count(
            &second,
            "SELECT COUNT(*) FROM subscriber WHERE discord_id = 555000111 AND permanent"
        )
        .await,
        1,
        "permanence survives the round trip"
    );
    assert!(
        exported.contains(",Main,pending,2030-06-30T23:59:59+00:00,no,no"),
        "{exported}"
    );
}

async fn every_bad_csv_is_named_by_line_and_column_and_writes_nothing(backend: Backend) {
    let app = install(backend).await;
    let dir = tempfile::tempdir().unwrap();
    let bin = usher(&app, dir.path());
    let cases: [(&str, Vec<u8>, &str); 8] = [
        (
            "not utf-8",
            b"plex_email\n\xff\xfe@example.com\n".to_vec(),
            "line 2: the file is not UTF-8 text",
        ),
        (
            "no header",
            b"ana@example.com,Standard\n".to_vec(),
            "line 1: no header: the first line must name the columns",
        ),
        (
            "duplicate column",
            b"plex_email,plan,plan\nana@example.com,Standard,Standard\n".to_vec(),
            "line 1, column plan: appears twice (columns 2 and 3)",
        ),
        (
            "unknown column",
            b"plex_email,colour\nana@example.com,red\n".to_vec(),
            "line 1, column colour: unknown column (column 2)",
        ),
        (
            "unknown plan",
            b"plex_email,plan\nana@example.com,Gold\n".to_vec(),
            "line 2, column plan: there is no plan `Gold`",
        ),
        (
            "paid_until in the past",
            b"plex_email,plan,paid_until\nana@example.com,Standard,2001-01-01\n".to_vec(),
            "line 2, column paid_until: 2001-01-01 is in the past",
        ),
        (
            "an email that does not parse",
            b"plex_email\nnot an email\n".to_vec(),
            "line 2, column plex_email: `not an email`",
        ),
        (
            "two rows for one email",
            b"plex_email\nana@example.com\nANA@example.com\n".to_vec(),
            "line 3, column plex_email: ana@example.com is on line 2 already",
        ),
    ];
    for (what, bytes, wanted) in cases {
        let file = dir.path().join("bad.csv");
        std::fs::write(&file, &bytes).unwrap();
        let output = bin.output(&["import", "csv", file.to_str().unwrap()]).await;
        let err = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{what}: succeeded");
        assert!(err.contains(wanted), "{what}: wanted `{wanted}` in {err}");
        assert!(
            err.contains("nothing was imported"),
            "{what}: says nothing was written: {err}"
        );
    }
    assert_eq!(count(&app, "SELECT COUNT(*) FROM subscriber").await, 0);
    assert_eq!(count(&app, "SELECT COUNT(*) FROM import_run").await, 0);

    // --skip-bad: the good rows go in, the bad ones are listed.
    let file = dir.path().join("mixed.csv");
    std::fs::write(
        &file,
        "plex_email,plan\ngood@example.com,Standard\nbad@example.com,Gold\n",
    )
    .unwrap();
    let out = bin
        .ok(&["import", "csv", file.to_str().unwrap(), "--skip-bad"])
        .await;
    assert!(out.contains("Skipped 1 bad rows:"), "{out}");
    assert!(
        out.contains("line 3, column plan: there is no plan `Gold`"),
        "{out}"
    );
    assert!(out.contains("Imported 1 people."), "{out}");
    assert_eq!(count(&app, "SELECT COUNT(*) FROM subscriber").await, 1);
}

crate::on_both_backends!(
    a_csv_and_usher_s_own_export_re_import_into_a_fresh_install,
    every_bad_csv_is_named_by_line_and_column_and_writes_nothing,
);
