//! The suite-wide personal-data check of the logs can fail: alone in its
//! binary, since the line it writes would fail every other test's check.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

#[tokio::test]
#[should_panic(expected = "personal data \"4242424242424242\" in a log line")]
async fn a_card_number_in_a_log_line_is_caught() {
    // Through a server's start, so the capture is installed as for every test.
    let s = common::start().await;
    tracing::warn!(target: "open131_server", number = "4242424242424242", "a careless line");
    drop(s);
}
