//! Macros that declare the two families of job kinds whose arguments are alike: share jobs (the
//! share; its owner account, for the rate limit; the generation that separates repeated jobs on
//! one share) and periodic jobs (the period label, e.g. the hour). Each kind still has its own
//! file.

/// Declares a share job kind: its arguments, constructor, key `"{kind}:{share}:{generation}"`,
/// the owner account's rate limit, and a `run` that calls one `plex_sync` step.
macro_rules! share_job {
    ($(#[$meta:meta])* $name:ident, $kind:literal, $step:path) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
        pub struct $name {
            /// The share.
            pub share: $crate::domain::ShareId,
            /// The server's owner account when queued: its plex.tv calls share one rate limit.
            /// (Absent from jobs queued by releases before 0.2; they run unlimited.)
            #[serde(default)]
            pub owner: Option<$crate::domain::OwnerAccountId>,
            /// Separates repeated jobs of this kind on one share (e.g. the plan change's time).
            #[serde(default)]
            pub generation: String,
        }

        impl $name {
            /// The job for `share` on a server of `owner`, once per `generation`.
            pub fn new(
                share: $crate::domain::ShareId,
                owner: $crate::domain::OwnerAccountId,
                generation: &str,
            ) -> Self {
                Self {
                    share,
                    owner: Some(owner),
                    generation: generation.to_owned(),
                }
            }
        }

        impl $crate::jobs::Job for $name {
            const KIND: &'static str = $kind;

            fn key(&self) -> String {
                format!("{}:{}:{}", Self::KIND, self.share, self.generation)
            }

            fn rate_key(&self) -> Option<String> {
                self.owner.map($crate::services::shares::owner_rate_key)
            }

            async fn run(
                self,
                app: &$crate::app::App,
                _job: &$crate::jobs::ClaimedJob,
            ) -> Result<(), $crate::jobs::JobError> {
                Ok($step(app, self.share).await?)
            }
        }
    };
}

/// Declares a periodic job kind: its arguments (the period label), constructor, key
/// `"{kind}:{period}"`, and a `run` that calls one service step returning `anyhow::Result`, whose
/// failure is retried.
macro_rules! period_job {
    ($(#[$meta:meta])* $name:ident, $kind:literal, $step:path) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
        pub struct $name {
            /// The period label (e.g. `2026030112`, the hour).
            #[serde(default)]
            pub period: String,
        }

        impl $name {
            /// The run of `period`.
            pub fn new(period: &str) -> Self {
                Self {
                    period: period.to_owned(),
                }
            }
        }

        impl $crate::jobs::Job for $name {
            const KIND: &'static str = $kind;

            fn key(&self) -> String {
                format!("{}:{}", Self::KIND, self.period)
            }

            async fn run(
                self,
                app: &$crate::app::App,
                _job: &$crate::jobs::ClaimedJob,
            ) -> Result<(), $crate::jobs::JobError> {
                $step(app)
                    .await
                    .map(drop)
                    .map_err($crate::jobs::JobError::retry)
            }
        }
    };
}

pub(crate) use {period_job, share_job};
