//! The models against published estimates (the CDNOW cohort of Fader, Hardie & Lee) and
//! against populations simulated from known parameters with the models' own generative
//! story: the truth must lie inside the fit's 99.9% likelihood-ratio region (which
//! shrinks as the population grows), and the expected purchases of a hold-out period must
//! match what the simulated customers then bought.

use crm_churn::model::{BgNbd, GammaGamma, Spend, Stats, bgnbd, gamma_gamma, group};
use crm_churn::simulate::simulate;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Beta, Distribution, Exp, Gamma};

/// chi-square 99.9% quantiles with 4 and 3 degrees of freedom.
const CHI2_4_999: f64 = 18.467;
const CHI2_3_999: f64 = 16.266;

fn cdnow() -> Vec<(Stats, f64)> {
    let text = include_str!("data/cdnow_summary.csv");
    text.lines()
        .skip(1)
        .map(|line| {
            let f: Vec<f64> = line.split(',').map(|v| v.parse().unwrap()).collect();
            #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
            let x = f[1] as u32;
            (
                Stats {
                    x,
                    t_x: f[2],
                    t: f[3],
                },
                f[4],
            )
        })
        .collect()
}

fn within(got: f64, want: f64, rel: f64) -> bool {
    (got - want).abs() <= rel * want.abs()
}

#[test]
fn bgnbd_reproduces_the_published_cdnow_estimates() {
    let data = cdnow();
    assert_eq!(data.len(), 2357);
    let fit = bgnbd::fit(&group(data.iter().map(|(s, _)| *s))).unwrap();
    let p = fit.params;
    eprintln!(
        "CDNOW BG/NBD: {p:?}, LL {:.2}, {} iterations",
        fit.log_likelihood, fit.iterations
    );
    // Fader, Hardie & Lee (2005), table/fig. 1: r 0.243, alpha 4.414, a 0.793, b 2.426,
    // LL -9582.4 (weeks).
    for (name, got, want) in [
        ("r", p.r, 0.243),
        ("alpha", p.alpha, 4.414),
        ("a", p.a, 0.793),
        ("b", p.b, 2.426),
    ] {
        assert!(within(got, want, 0.01), "{name} {got} vs {want}");
    }
    assert!(
        (fit.log_likelihood - -9582.4).abs() < 0.1,
        "{}",
        fit.log_likelihood
    );
    assert_eq!(fit.customers, 2357);
    // Deterministic: the same population gives the same parameters, bit for bit.
    let again = bgnbd::fit(&group(data.iter().map(|(s, _)| *s))).unwrap();
    assert_eq!(fit, again);
}

#[test]
fn gamma_gamma_reproduces_the_published_cdnow_estimates() {
    let spends: Vec<(Spend, u64)> = cdnow()
        .iter()
        .filter(|(s, _)| s.x > 0)
        .map(|(s, m)| (Spend { x: s.x, m_x: *m }, 1))
        .collect();
    assert_eq!(spends.len(), 946);
    let fit = gamma_gamma::fit(&spends).unwrap();
    let g = fit.params;
    eprintln!(
        "CDNOW Gamma-Gamma: {g:?}, LL {:.2}, {} iterations",
        fit.log_likelihood, fit.iterations
    );
    // Hardie's note 025: p 6.25, q 3.74, gamma 15.44.
    for (name, got, want) in [
        ("p", g.p, 6.25),
        ("q", g.q, 3.74),
        ("gamma", g.gamma, 15.44),
    ] {
        assert!(within(got, want, 0.01), "{name} {got} vs {want}");
    }
    // The population's mean spend, p gamma / (q - 1): about $35.
    let mean = g.p * g.gamma / (g.q - 1.0);
    assert!((34.0..37.0).contains(&mean), "{mean}");
}

fn recover(truth: BgNbd, spend: GammaGamma, n: usize, seed: u64) {
    let people = simulate(truth, spend, n, 26.0..78.0, 39.0, seed);
    let population = group(people.iter().map(|s| s.stats));
    let fit = bgnbd::fit(&population).unwrap();
    #[allow(clippy::cast_precision_loss)]
    let ll_at = |m: &BgNbd| -> f64 {
        population
            .iter()
            .map(|(s, k)| *k as f64 * m.log_likelihood(*s))
            .sum()
    };
    let lr = 2.0 * (fit.log_likelihood - ll_at(&truth));
    eprintln!(
        "{n} customers, truth {truth:?}: fitted {:?} (LR {lr:.2})",
        fit.params
    );
    assert!(lr >= -1e-6, "the fit is below the truth's likelihood: {lr}");
    assert!(
        lr < CHI2_4_999,
        "{n} customers: truth {truth:?} outside the 99.9% region of {:?} (LR {lr})",
        fit.params
    );
    // The hold-out: expected purchases summed over customers against what they bought.
    let expected: f64 = people
        .iter()
        .map(|s| fit.params.expected(s.stats, 39.0))
        .sum();
    let bought: f64 = people.iter().map(|s| f64::from(s.hold_out)).sum();
    // Four standard deviations of the total, bounded above by the root of the summed
    // squared counts (a customer's count varies at most by its square).
    let spread: f64 = people
        .iter()
        .map(|s| f64::from(s.hold_out).powi(2))
        .sum::<f64>()
        .sqrt();
    assert!(
        (expected - bought).abs() <= 4.0 * spread,
        "{n} customers: expected {expected:.0} purchases in the hold-out, bought {bought} (spread {spread:.0})"
    );
    let spends: Vec<(Spend, u64)> = people
        .iter()
        .filter_map(|s| s.spend)
        .map(|s| (s, 1))
        .collect();
    let g = gamma_gamma::fit(&spends).unwrap();
    #[allow(clippy::cast_precision_loss)]
    let ll_spend =
        |m: &GammaGamma| -> f64 { spends.iter().map(|(s, _)| m.log_likelihood(*s)).sum() };
    let lr = 2.0 * (g.log_likelihood - ll_spend(&spend));
    assert!(
        (-1e-6..CHI2_3_999).contains(&lr),
        "{n} customers: spend truth {spend:?} outside the 99.9% region of {:?} (LR {lr})",
        g.params
    );
}

/// Repeat purchases of new customers in (0, t], with the BG/NBD story.
fn simulate_new(truth: BgNbd, n: usize, t: f64, seed: u64) -> Vec<f64> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let rates = Gamma::new(truth.r, 1.0 / truth.alpha).unwrap();
    let dropout = Beta::new(truth.a, truth.b).unwrap();
    (0..n)
        .map(|_| {
            let gap = Exp::new(rates.sample(&mut rng)).unwrap();
            let p: f64 = dropout.sample(&mut rng);
            let (mut at, mut x) = (0.0, 0.0);
            loop {
                at += gap.sample(&mut rng);
                if at > t {
                    break x;
                }
                x += 1.0;
                if rng.r#gen::<f64>() < p {
                    break x;
                }
            }
        })
        .collect()
}

#[test]
fn a_new_customers_expected_purchases_match_the_simulated_mean() {
    for truth in [
        // a < 1 (CDNOW) and a > 1.
        BgNbd {
            r: 0.243,
            alpha: 4.414,
            a: 0.793,
            b: 2.426,
        },
        BgNbd {
            r: 1.5,
            alpha: 8.0,
            a: 2.5,
            b: 4.0,
        },
    ] {
        for t in [5.0, 39.0, 150.0] {
            let xs = simulate_new(truth, 200_000, t, 5);
            #[allow(clippy::cast_precision_loss)]
            let n = xs.len() as f64;
            let mean = xs.iter().sum::<f64>() / n;
            let sd = (xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n).sqrt();
            let want = truth.expected_new(t);
            assert!(
                (mean - want).abs() < 4.0 * sd / n.sqrt(),
                "{truth:?} t {t}: simulated {mean}, E[X(t)] {want}"
            );
        }
    }
}

#[test]
fn a_cdnow_like_population_is_recovered_at_two_sizes() {
    let truth = BgNbd {
        r: 0.243,
        alpha: 4.414,
        a: 0.793,
        b: 2.426,
    };
    let spend = GammaGamma {
        p: 6.25,
        q: 3.74,
        gamma: 15.44,
    };
    recover(truth, spend, 3_000, 1);
    recover(truth, spend, 30_000, 2);
}

#[test]
fn a_population_of_mostly_one_time_buyers_is_recovered() {
    // Slow buyers who mostly drop out after their first repeat purchase.
    let truth = BgNbd {
        r: 0.6,
        alpha: 60.0,
        a: 3.0,
        b: 1.2,
    };
    let spend = GammaGamma {
        p: 2.0,
        q: 5.0,
        gamma: 120.0,
    };
    let people = simulate(truth, spend, 20_000, 26.0..78.0, 39.0, 3);
    let one_time = people.iter().filter(|s| s.stats.x == 0).count();
    assert!(one_time > 12_000, "{one_time} of 20000 never bought again");
    recover(truth, spend, 20_000, 3);
}
