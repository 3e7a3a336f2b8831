//! The `streamguard` binary: the command line of [`streamguard::cli`].

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    streamguard::cli::main().await
}
