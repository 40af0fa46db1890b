//! The `churn` phase: the time to fit both churn models (BG/NBD and Gamma-Gamma) on
//! populations drawn from known parameters, at 100,000 and 1,000,000 customers, with
//! statistics in whole days as the churn fold gives them. No service is involved: the
//! fit is a pure function of the customers' statistics.

use std::time::Instant;

use crm_churn::model::{self, BgNbd, GammaGamma, Spend};
use serde::Serialize;

/// One fit's figures.
#[derive(Clone, Debug, Serialize)]
pub struct ChurnFit {
    pub customers: usize,
    /// Distinct (x, t_x, T): what the likelihood sums over.
    pub groups: usize,
    /// Grouping and both fits (the simulation excluded).
    pub seconds: f64,
    pub iterations: u64,
    pub truth: [f64; 4],
    pub fitted: [f64; 4],
    pub spend_truth: [f64; 3],
    pub spend_fitted: [f64; 3],
}

/// CDNOW's estimates in days (alpha of 4.414 weeks is 30.9 days).
const TRUTH: BgNbd = BgNbd {
    r: 0.243,
    alpha: 30.9,
    a: 0.793,
    b: 2.426,
};
const SPEND: GammaGamma = GammaGamma {
    p: 6.25,
    q: 3.74,
    gamma: 15.44,
};

/// Fits at each population size.
///
/// # Errors
/// A fit that fails (it should not on these populations).
pub fn run(sizes: &[usize], log: &dyn Fn(String)) -> anyhow::Result<Vec<ChurnFit>> {
    let mut out = Vec::new();
    for (i, &n) in sizes.iter().enumerate() {
        let people =
            crm_churn::simulate::simulate(TRUTH, SPEND, n, 30.0..730.0, 0.0, 100 + i as u64);
        let started = Instant::now();
        // Whole days, as the fold counts them.
        let stats = people.iter().map(|p| model::Stats {
            x: p.stats.x,
            t_x: p.stats.t_x.floor(),
            t: p.stats.t.floor(),
        });
        let grouped = model::group(stats);
        let bgnbd = model::bgnbd::fit(&grouped)?;
        let spends: Vec<(Spend, u64)> = people
            .iter()
            .filter_map(|p| p.spend)
            .map(|s| (s, 1))
            .collect();
        let spend = model::gamma_gamma::fit(&spends)?;
        let seconds = started.elapsed().as_secs_f64();
        let f = bgnbd.params;
        let g = spend.params;
        log(format!(
            "churn fit: {n} customers ({} groups) in {seconds:.2}s, {} + {} iterations; r {:.3} alpha {:.2} a {:.3} b {:.3} (truth 0.243 30.9 0.793 2.426); p {:.2} q {:.2} gamma {:.2} (truth 6.25 3.74 15.44)",
            grouped.len(),
            bgnbd.iterations,
            spend.iterations,
            f.r,
            f.alpha,
            f.a,
            f.b,
            g.p,
            g.q,
            g.gamma
        ));
        out.push(ChurnFit {
            customers: n,
            groups: grouped.len(),
            seconds,
            iterations: bgnbd.iterations + spend.iterations,
            truth: [TRUTH.r, TRUTH.alpha, TRUTH.a, TRUTH.b],
            fitted: [f.r, f.alpha, f.a, f.b],
            spend_truth: [SPEND.p, SPEND.q, SPEND.gamma],
            spend_fitted: [g.p, g.q, g.gamma],
        });
    }
    Ok(out)
}

/// The fits as Markdown rows.
#[must_use]
pub fn table(fits: &[ChurnFit]) -> String {
    let mut t = String::from(
        "| churn models fitted on simulated customers | groups | seconds (BG/NBD + Gamma-Gamma) | iterations | target |\n|---|---|---|---|---|\n",
    );
    for f in fits {
        t.push_str(&format!(
            "| {} | {} | {:.2} | {} | well under 60 s |\n",
            f.customers, f.groups, f.seconds, f.iterations
        ));
    }
    t
}
