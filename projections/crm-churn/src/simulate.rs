//! Populations drawn from the models' own generative story, for parameter-recovery tests
//! and the bench: lambda ~ Gamma(r, alpha) and p ~ Beta(a, b) per customer; purchases at
//! Poisson rate lambda from the first (at time 0); after each repeat purchase the
//! customer drops out with probability p. Spend: nu ~ Gamma(q, gamma) per customer, each
//! transaction's value ~ Gamma(p, nu). Seeded: the same seed gives the same population.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Beta, Distribution, Exp, Gamma};

use crate::model::{BgNbd, GammaGamma, Spend, Stats};

/// A simulated customer: their statistics over (0, T], and what they bought in the
/// hold-out period (T, T + hold_out].
#[derive(Clone, Debug)]
pub struct Simulated {
    pub stats: Stats,
    pub hold_out: u32,
    pub spend: Option<Spend>,
}

/// `n` customers observed for T uniform in `observed` (model time units) and a hold-out
/// of `hold_out` units after it.
///
/// # Panics
/// Parameters outside the distributions' domains (not positive).
#[must_use]
pub fn simulate(
    truth: BgNbd,
    spend: GammaGamma,
    n: usize,
    observed: std::ops::Range<f64>,
    hold_out: f64,
    seed: u64,
) -> Vec<Simulated> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let rates = Gamma::new(truth.r, 1.0 / truth.alpha).expect("r, alpha > 0");
    let dropout = Beta::new(truth.a, truth.b).expect("a, b > 0");
    let scales = Gamma::new(spend.q, 1.0 / spend.gamma).expect("q, gamma > 0");
    (0..n)
        .map(|_| {
            let big_t = rng.gen_range(observed.clone());
            let lambda: f64 = rates.sample(&mut rng);
            let p: f64 = dropout.sample(&mut rng);
            let nu: f64 = scales.sample(&mut rng);
            let value = Gamma::new(spend.p, 1.0 / nu).expect("p > 0");
            let gap = Exp::new(lambda).expect("lambda >= 0");
            let (mut t, mut x, mut t_x, mut alive) = (0.0, 0u32, 0.0, true);
            let (mut hold, mut total) = (0u32, 0.0);
            while alive {
                t += gap.sample(&mut rng);
                if t >= big_t + hold_out {
                    break;
                }
                if t < big_t {
                    x += 1;
                    t_x = t;
                    total += value.sample(&mut rng);
                } else {
                    hold += 1;
                }
                alive = rng.r#gen::<f64>() >= p;
            }
            Simulated {
                stats: Stats { x, t_x, t: big_t },
                hold_out: hold,
                spend: (x > 0).then(|| Spend {
                    x,
                    m_x: total / f64::from(x),
                }),
            }
        })
        .collect()
}
