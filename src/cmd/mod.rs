pub mod compare;
pub mod exec;
pub mod load;
pub mod report;
pub mod run;
pub mod schema;
pub mod token;
pub mod up;
pub mod validate;

/// Logs go to stderr, filtered by `RUST_LOG` (default: warnings and errors).
pub fn init_tracing() {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}

/// Loads and validates a scenario. Errors name file, line and field.
pub fn load_scenario(path: &std::path::Path) -> anyhow::Result<scenario::Loaded> {
    Ok(scenario::load(path)?)
}
