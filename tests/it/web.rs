//! The web door's operational routes on both backends.

use usher::jobs::NewJob;

use crate::helpers::{Backend, TestApp};

async fn healthz_answers_and_metrics_count_jobs_by_state(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let client = reqwest::Client::new();
    let health = client.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(health.status(), 200);

    let mut tx = app.app.db.begin().await.unwrap();
    for n in 0..3 {
        app.app
            .queue
            .enqueue_raw(&mut tx, &NewJob::new("test", &n, format!("m-{n}")))
            .await
            .unwrap();
    }
    tx.commit().await.unwrap();
    let metrics = client.get(app.url("/metrics")).send().await.unwrap();
    assert_eq!(metrics.status(), 200);
    assert!(
        metrics.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
    let text = metrics.text().await.unwrap();
    assert!(text.contains("usher_jobs{state=\"queued\"} 3\n"), "{text}");
    assert!(text.contains("usher_jobs{state=\"dead\"} 0\n"), "{text}");
}

async fn healthz_says_503_when_the_database_is_gone(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.app.db.close().await;
    let health = reqwest::get(app.url("/healthz")).await.unwrap();
    assert_eq!(health.status(), 503);
}

crate::on_both_backends!(
    healthz_answers_and_metrics_count_jobs_by_state,
    healthz_says_503_when_the_database_is_gone
);
