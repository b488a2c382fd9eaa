//! Smoke tests of the test harness itself: real NATS JetStream survives a
//! kill -9 + restart, and test databases are fresh and distinct.

use ecs_tests::servers::{NatsServer, TestDatabase};

#[tokio::test]
async fn nats_jetstream_data_survives_kill_and_restart() -> anyhow::Result<()> {
    let mut server = NatsServer::start();
    assert!(server.url().starts_with("nats://127.0.0.1:"));
    assert!(server.url().ends_with(&format!(":{}", server.port())));

    let client = async_nats::connect(server.url()).await?;
    let js = async_nats::jetstream::new(client.clone());
    js.create_stream(async_nats::jetstream::stream::Config {
        name: "HARNESS".to_string(),
        subjects: vec!["harness.>".to_string()],
        storage: async_nats::jetstream::stream::StorageType::File,
        ..Default::default()
    })
    .await?;
    let ack = js.publish("harness.one", "hello".into()).await?.await?;
    assert_eq!(ack.sequence, 1);
    drop(js);
    drop(client);

    server.kill();
    assert!(!server.is_running());
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", server.port())).is_err(),
        "nothing listens after kill"
    );

    let port = server.port();
    server.restart();
    assert_eq!(server.port(), port, "restart keeps the port");

    let client = async_nats::connect(server.url()).await?;
    let js = async_nats::jetstream::new(client);
    let mut stream = js.get_stream("HARNESS").await?;
    assert_eq!(stream.info().await?.state.messages, 1);
    let msg = stream.get_raw_message(1).await?;
    assert_eq!(msg.subject.as_str(), "harness.one");
    assert_eq!(&msg.payload[..], b"hello");
    Ok(())
}

#[tokio::test]
async fn test_databases_are_fresh_and_distinct() -> anyhow::Result<()> {
    let (a, b) = tokio::join!(TestDatabase::create(), TestDatabase::create());
    assert_ne!(a.name, b.name);
    assert_ne!(a.url, b.url);
    assert!(a.name.starts_with("ecs_test_"));

    for db in [&a, &b] {
        let pool = db.pool().await?;
        let (current,): (String,) = sqlx::query_as("SELECT current_database()")
            .fetch_one(&pool)
            .await?;
        assert_eq!(current, db.name);
        let (tables,): (i64,) = sqlx::query_as(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'",
        )
        .fetch_one(&pool)
        .await?;
        assert_eq!(tables, 0, "a new database is empty");
        pool.close().await;
    }

    // Writes to one are invisible in the other.
    let pa = a.pool().await?;
    sqlx::query("CREATE TABLE marker (x int)")
        .execute(&pa)
        .await?;
    let pb = b.pool().await?;
    let missing = sqlx::query("SELECT * FROM marker").execute(&pb).await;
    assert!(missing.is_err(), "databases must be separate");
    Ok(())
}
