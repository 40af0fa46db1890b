//! Churn risk and customer lifetime value (issue 17), first parts: the models
//! ([`model`]: BG/NBD and Gamma-Gamma fitted by maximum likelihood, P(alive), expected
//! purchases, expected spend, CLV) and the fold that keeps each customer's purchases in
//! business time ([`purchases`]), from which [`fit`] fits both models at any calibration
//! end; [`signals`] keeps the service and engagement signals and scores churn risk with
//! its drivers; [`predict`] puts one customer's figures together; [`models`] stores the
//! fits and which one is served, and [`service`] is what `ChurnService` and the
//! scheduled refit call.

pub mod fit;
pub mod model;
pub mod models;
pub mod predict;
pub mod purchases;
pub mod service;
pub mod signals;
pub mod simulate;

pub use purchases::Churn;
