//! `sluis console`: the privacy officer's web console, run on the officer's
//! own machine.
//!
//! It is a client of the node's `AuditService` over mutual TLS with the
//! officer's certificate (`rpc::officer`), so the node gains no new way in
//! and every page the officer opens is recorded in the log like any other
//! call. It serves a page on the loopback interface only; the page and its
//! script and style are built into the binary (`assets/`), nothing is
//! fetched from elsewhere.
//!
//! Other web pages the officer has open must not be able to use it: every
//! API call must carry the random token printed at start (in a request
//! header, which no other origin can set without a CORS preflight the
//! console never grants), and every request must name the console's own
//! address as its `Host` (a DNS-rebinding page cannot). The pages forbid
//! framing and send no referrer.
//!
//! What the officer verifies, the page verifies: an entry's inclusion proof
//! and the checkpoint's Ed25519 signature are checked in the browser
//! (WebCrypto), from the bytes the node sent, not by this server.

mod api;

use std::net::SocketAddr;

use anyhow::Context as _;

use crate::cli::audit::Remote;

pub(crate) use api::Console;

/// What `sluis console` takes.
#[derive(clap::Args)]
pub struct Command {
    /// The local port to serve the console on (0: any free port). It listens on 127.0.0.1 only.
    #[arg(long, default_value_t = 7480)]
    pub port: u16,
    /// The most matching entries the charts and alerts are computed over (1 to 100000); the
    /// page says when the filters match more, and over which entries it counted.
    #[arg(long, value_name = "N", default_value_t = api::CHART_ENTRIES,
          value_parser = clap::value_parser!(u32).range(1..=i64::from(api::MAX_CHART_ENTRIES)))]
    pub chart_entries: u32,
    #[command(flatten)]
    pub(crate) remote: Remote,
}

/// Connects to the node as the officer, binds 127.0.0.1, prints the
/// console's address with its token, and serves until Ctrl-C.
pub async fn run(c: Command) -> anyhow::Result<std::process::ExitCode> {
    if c.remote.node.is_none() && c.remote.profile.is_none() {
        anyhow::bail!(
            "say which node: --node https://HOST:PORT --cert PEM --key PEM --ca PEM, or --profile FILE"
        );
    }
    let connected = c.remote.connect().await?;
    let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], c.port)))
        .await
        .with_context(|| format!("cannot listen on 127.0.0.1:{}", c.port))?;
    let console = Console::new(
        connected.officer,
        connected.node,
        listener.local_addr()?,
        c.chart_entries,
    );
    println!("{}", console.url());
    eprintln!(
        "sluis console for {} on {}; open the address above (it holds this session's token). Stop with Ctrl-C.",
        console.node(),
        console.url()
    );
    axum::serve(listener, console.router())
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    Ok(std::process::ExitCode::SUCCESS)
}
