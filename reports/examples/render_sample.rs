//! Render the synthetic sample run into a directory, as `meshsim` does after a run:
//! `cargo run -p meshsim-reports --example render_sample -- OUT_DIR [SEED] [SLOWDOWN]`.
//! Used by benches/report-screenshot.sh to look at the report as a person would.

use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let out = PathBuf::from(
        args.next()
            .ok_or("usage: render_sample OUT_DIR [SEED] [SLOWDOWN]")?,
    );
    let seed: u64 = args.next().map(|s| s.parse()).transpose()?.unwrap_or(42);
    let slowdown: f64 = args.next().map(|s| s.parse()).transpose()?.unwrap_or(1.0);
    let run = results::testing::sample_run(seed, slowdown);
    std::fs::create_dir_all(&out)?;
    run.save(out.join("run.json"))?;
    for p in reports::render_all(&run, &out)? {
        println!("{}", p.display());
    }
    Ok(())
}
