//! Readiness when the database goes away under a running app. PostgreSQL only: the
//! database is dropped (connections terminated) while the app serves. An embedded SQLite
//! file cannot be taken away from open connections in a way the suite can rely on.

mod postgres {
    use serde_json::json;

    use crate::helpers::{spawn_app, Backend};

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn readyz_answers_503_when_the_database_is_gone() {
        let app = spawn_app(Backend::postgres()).await;
        let ready = app.get_public("/readyz").await;
        assert_eq!(
            (ready.status, &ready.body),
            (200, &json!({"status": "ready"}))
        );
        app.database.as_ref().expect("own database").drop_now();
        let gone = app.get_public("/readyz").await;
        assert_eq!(
            (gone.status, &gone.body),
            (503, &json!({"status": "unavailable", "reason": "database"}))
        );
        let alive = app.get_public("/healthz").await;
        assert_eq!(alive.status, 200, "the process itself is up");
    }
}
