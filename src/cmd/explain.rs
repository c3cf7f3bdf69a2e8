//! `meshsim explain`: why a request from a pod is allowed or refused — the path it takes, at
//! every hop the policies considered, each rule matched or why not, the hop's verdict — then
//! the request sent for real, and a loud line when the prediction and the outcome disagree.

use std::process::ExitCode;

#[derive(clap::Args)]
pub struct Args {
    /// Which cluster, when several are up.
    #[arg(long)]
    pub cluster: Option<String>,
    /// The pod the request is sent from, e.g. order-service-0.
    pub pod: String,
    /// e.g. http://payment-service.production:8080/api/v1/payments
    pub url: String,
    /// HTTP method.
    #[arg(short = 'X', long = "request", default_value = "GET")]
    pub method: String,
    /// A request header, `Name: value` (repeatable), as curl's -H.
    #[arg(short = 'H', long = "header")]
    pub headers: Vec<String>,
    /// Print the explanation as JSON.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let mut headers = Vec::new();
    for h in &args.headers {
        let Some((k, v)) = h.split_once(':') else {
            anyhow::bail!("-H {h:?}: write a header as `Name: value`");
        };
        headers.push((k.trim().to_lowercase(), v.trim().to_string()));
    }
    let ask = sim::explain::Ask {
        from: args.pod.clone(),
        method: args.method.to_uppercase(),
        url: args.url.clone(),
        headers,
    };
    let uid = nix::unistd::getuid().as_raw();
    let info = sim::cluster::find(uid, args.cluster.as_deref())?;
    let e = sim::cluster::query_explain(uid, &info.name, &ask)?
        .map_err(|e| anyhow::anyhow!("cluster {}: {e}", info.name))?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&e)?);
    } else {
        print(&e);
    }
    Ok(if e.agree {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn print(e: &sim::explain::Explanation) {
    println!("{}", e.request);
    let several = e.paths.len() > 1;
    for p in &e.paths {
        println!();
        if several {
            println!("to endpoint {}:", p.endpoint);
        }
        println!("  path: {}", p.route.join(" → "));
        for h in &p.hops {
            println!("  {} — sees {}", h.proxy, h.sees);
            for c in &h.checks {
                println!("    {c}");
            }
            for pol in &h.policies {
                println!("    policy {}", pol.policy);
                for r in &pol.rules {
                    println!("      {r}");
                }
            }
            println!("    verdict: {}", h.verdict);
        }
        println!(
            "  predicted: {}{}",
            p.outcome,
            if p.certain {
                ""
            } else {
                " (not certain: an ext_authz provider decides)"
            }
        );
    }
    println!();
    println!("sent for real: {}", e.actual);
    for d in &e.actual_decisions {
        println!("  {d}");
    }
    for d in &e.cni_drops {
        println!("  {d}");
    }
    if !e.cni_drops.is_empty() {
        println!(
            "  (NetworkPolicy is the CNI's, outside the proxies: the prediction above covers the proxies only)"
        );
    }
    if !e.agree {
        println!();
        println!(
            "!! THE PREDICTION AND THE REAL OUTCOME DISAGREE: this is a meshsim bug; please report it with this output"
        );
    }
}
