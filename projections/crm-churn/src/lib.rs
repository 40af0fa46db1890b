//! Churn risk and customer lifetime value (issue 17), first parts: the models
//! ([`model`]: BG/NBD and Gamma-Gamma fitted by maximum likelihood, P(alive), expected
//! purchases, expected spend, CLV) and the fold that keeps each customer's purchases in
//! business time ([`purchases`]), from which [`fit`] fits both models at any calibration
//! end; [`signals`] keeps the service and engagement signals and scores churn risk with
//! its drivers; [`predict`] puts one customer's figures together. The stored fits and
//! `ChurnService` come next.

pub mod fit;
pub mod model;
pub mod predict;
pub mod purchases;
pub mod signals;
pub mod simulate;

pub use purchases::Churn;
