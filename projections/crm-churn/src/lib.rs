//! Churn risk and customer lifetime value (issue 17), first parts: the models
//! ([`model`]: BG/NBD and Gamma-Gamma fitted by maximum likelihood, P(alive), expected
//! purchases, expected spend, CLV) and the fold that keeps each customer's purchases in
//! business time ([`purchases`]), from which [`fit`] fits both models at any calibration
//! end. The stored fits, the risk score and `ChurnService` come next.

pub mod fit;
pub mod model;
pub mod purchases;
pub mod simulate;

pub use purchases::Churn;
