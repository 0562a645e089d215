//! Serves the ZITADEL test peer (`zitadel_peer.rs`) to try the write-through by hand:
//!   cargo run -p set-my-phone-test-harness --bin zitadel-peer -- [ADDRESS] [PAT]
//! (default 127.0.0.1:8081 and `local-pat`); it accepts the personal access token PAT, and
//! prints each call it gets.

use set_my_phone_test_harness::zitadel_peer::ZitadelPeer;
use std::io::Write as _;
use std::time::Duration;

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let mut args = std::env::args().skip(1);
    let address = args.next().unwrap_or_else(|| "127.0.0.1:8081".into());
    let pat = args.next().unwrap_or_else(|| "local-pat".into());
    let peer = ZitadelPeer::start_at(&address, Some(&pat), None).await;
    println!(
        "ZITADEL test peer on {} (personal access token: {pat})",
        peer.url
    );
    let mut seen = 0;
    loop {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let received = peer.received();
        for call in &received[seen..] {
            println!("{} {} {}", call.method, call.path, call.body);
        }
        seen = received.len();
        // Shown as it happens, also when the output is a file or a pipe.
        let _ = std::io::stdout().flush();
    }
}
