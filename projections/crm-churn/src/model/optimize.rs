//! Minimisation of a smooth function of a few log-space parameters: argmin's Nelder-Mead,
//! restarted from its result until a restart no longer improves it (a simplex can stall
//! short of the optimum on a long, curved valley). Deterministic: the same function and
//! start give the same result, bit for bit.

use argmin::core::{CostFunction, Executor, State, TerminationReason, TerminationStatus};
use argmin::solver::neldermead::NelderMead;

use super::FitError;

/// Iterations of one Nelder-Mead run.
const MAX_ITERS: u64 = 5_000;
/// Restarts before giving up.
const MAX_RESTARTS: u32 = 20;
/// A restart that improves the value by less than this (relative) ends the search.
const TOLERANCE: f64 = 1e-10;

/// Where the minimum is, its value and the iterations spent (all runs).
#[derive(Clone, Debug)]
pub(crate) struct Minimum {
    pub at: Vec<f64>,
    pub value: f64,
    pub iterations: u64,
}

struct Objective<'a>(&'a dyn Fn(&[f64]) -> f64);

impl CostFunction for Objective<'_> {
    type Param = Vec<f64>;
    type Output = f64;

    fn cost(&self, p: &Self::Param) -> Result<f64, argmin::core::Error> {
        let v = (self.0)(p);
        // Outside the function's domain (an overflow): never the minimum.
        Ok(if v.is_finite() { v } else { f64::MAX })
    }
}

/// Minimises `f` from `start`.
///
/// # Errors
/// [`FitError::NotConverged`] when the restarts keep improving or a run hits its
/// iteration limit; [`FitError::Optimizer`] when argmin fails.
pub(crate) fn minimize(f: &dyn Fn(&[f64]) -> f64, start: &[f64]) -> Result<Minimum, FitError> {
    let mut at = start.to_vec();
    let mut value = f(&at);
    let mut iterations = 0;
    for _ in 0..MAX_RESTARTS {
        let (next, next_value, iters, converged) = run(f, &at)?;
        iterations += iters;
        if !converged {
            return Err(FitError::NotConverged {
                iterations,
                reason: format!("a Nelder-Mead run used its {MAX_ITERS} iterations"),
            });
        }
        let improvement = value - next_value;
        if next_value <= value {
            at = next;
            value = next_value;
        }
        if improvement.abs() <= TOLERANCE * value.abs().max(1.0) {
            if !value.is_finite() || value == f64::MAX {
                return Err(FitError::NotConverged {
                    iterations,
                    reason: "the likelihood is not finite anywhere the search went".into(),
                });
            }
            return Ok(Minimum {
                at,
                value,
                iterations,
            });
        }
    }
    Err(FitError::NotConverged {
        iterations,
        reason: format!("still improving after {MAX_RESTARTS} restarts"),
    })
}

/// One Nelder-Mead run from a simplex around `at` (steps of 0.5 in log space).
fn run(f: &dyn Fn(&[f64]) -> f64, at: &[f64]) -> Result<(Vec<f64>, f64, u64, bool), FitError> {
    let mut simplex = vec![at.to_vec()];
    for i in 0..at.len() {
        let mut v = at.to_vec();
        v[i] += 0.5;
        simplex.push(v);
    }
    // The spread of the simplex's values at which a run ends, relative to the value (a
    // log-likelihood of a large population is large, and its rounding with it).
    let tolerance = 1e-12 * f(at).abs().max(1.0);
    let solver = NelderMead::new(simplex)
        .with_sd_tolerance(tolerance)
        .map_err(|e| FitError::Optimizer(e.to_string()))?;
    let result = Executor::new(Objective(f), solver)
        .configure(|s| s.max_iters(MAX_ITERS))
        .run()
        .map_err(|e| FitError::Optimizer(e.to_string()))?;
    let state = result.state();
    let best = state
        .get_best_param()
        .cloned()
        .ok_or_else(|| FitError::Optimizer("no best parameters".into()))?;
    let converged = matches!(
        state.get_termination_status(),
        TerminationStatus::Terminated(TerminationReason::SolverConverged)
    );
    Ok((best, state.get_best_cost(), state.get_iter(), converged))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rosenbrock_valley_is_followed_to_its_minimum() {
        let f = |p: &[f64]| (1.0 - p[0]).powi(2) + 100.0 * (p[1] - p[0] * p[0]).powi(2);
        let m = minimize(&f, &[-1.2, 1.0]).unwrap();
        assert!(
            (m.at[0] - 1.0).abs() < 1e-5 && (m.at[1] - 1.0).abs() < 1e-5,
            "{m:?}"
        );
        // Deterministic.
        let again = minimize(&f, &[-1.2, 1.0]).unwrap();
        assert_eq!(m.at, again.at);
    }

    #[test]
    fn a_function_without_a_minimum_is_not_converged() {
        let f = |p: &[f64]| p[0];
        assert!(matches!(
            minimize(&f, &[0.0]),
            Err(FitError::NotConverged { .. })
        ));
    }
}
