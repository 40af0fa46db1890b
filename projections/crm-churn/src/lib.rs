//! Churn risk and customer lifetime value (issue 17), first part: the models
//! ([`model`]): BG/NBD and Gamma-Gamma fitted by maximum likelihood, P(alive), expected
//! purchases, expected spend and CLV. The projection that keeps each customer's
//! statistics, the stored fits and `ChurnService` come next.

pub mod model;
