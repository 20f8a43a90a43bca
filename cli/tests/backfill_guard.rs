//! `autonumber backfill` rejects a prefix that the store has no record of, which is most
//! often a typo or the wrong store, unless `--new-prefix` says it is meant.

mod support;

use autonumber_tests::asana_fake::AsanaFake;
use support::{PROJECT, TOKEN};

#[tokio::test]
async fn unknown_prefix_is_rejected() {
    let fake = AsanaFake::start(TOKEN).await.unwrap();
    fake.add_project(PROJECT);
    let task = fake.add_task(PROJECT, "Existing task");
    let dir = tempfile::tempdir().unwrap();

    let mut command = support::autonumber(fake.url(), dir.path());
    command.args(["backfill", "--project", PROJECT, "--prefix", "OPS"]);
    let output = tokio::task::spawn_blocking(move || command.output().unwrap())
        .await
        .unwrap();

    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("--new-prefix"));
    assert_eq!(fake.task_name(&task).unwrap(), "Existing task");

    let mut command = support::autonumber(fake.url(), dir.path());
    command.args([
        "backfill",
        "--project",
        PROJECT,
        "--prefix",
        "OPS",
        "--new-prefix",
    ]);
    let output = tokio::task::spawn_blocking(move || command.output().unwrap())
        .await
        .unwrap();

    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(fake.task_name(&task).unwrap(), "OPS-1: Existing task");
}
