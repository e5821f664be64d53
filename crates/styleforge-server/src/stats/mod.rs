//! Statistics over what users told the service: rating summaries with a confidence interval for
//! the mean ([`ratings`]), and Bradley–Terry scores fitted to pairwise preferences
//! ([`bradley_terry`]). Pure functions over counts: the database gathers the counts, the
//! handlers shape the answers.

pub mod bradley_terry;
pub mod ratings;
