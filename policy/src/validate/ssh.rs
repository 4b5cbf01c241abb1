//! Validation of Tailscale SSH: `ssh` rules (sources, destinations and their combinations,
//! users, check periods, recorders) and the shape of `sshTests` destinations.

use super::rules::SELF_SOURCES;
use super::{quote, Place, Validator};
use crate::code::Code;
use crate::diag::Diagnostic;
use crate::model::{Alias, Autogroup, CheckPeriod, GoDuration, Selector, SshAction, SshUser};
use crate::source::Span;

impl Validator<'_> {
    /// One SSH rule.
    pub(super) fn ssh_rule(&mut self, rule: &crate::model::SshRule) {
        let mut src_has_tags = false;
        for sel in &rule.src {
            let ok = match &sel.alias {
                Alias::User(_) | Alias::UserDomain(_) | Alias::Group(_) => true,
                Alias::Tag(_) => {
                    src_has_tags = true;
                    true
                }
                Alias::Autogroup(Autogroup::Tagged) => {
                    src_has_tags = true;
                    true
                }
                Alias::Autogroup(a) => {
                    a.is_role() || matches!(a, Autogroup::Member | Autogroup::Members)
                }
                _ => false,
            };
            if ok {
                self.reference(sel, Place::SshSrc);
            } else {
                self.mark_used(sel);
                self.error(
                    Code::SshInvalidSrc,
                    sel.span,
                    format!("invalid src {}", quote(&sel.text)),
                    "SSH sources are users, groups, tags, autogroup:member, autogroup:tagged or user:*@domain",
                );
            }
        }
        for sel in &rule.dst {
            let ok = matches!(
                &sel.alias,
                Alias::Tag(_)
                    | Alias::User(_)
                    | Alias::Autogroup(
                        Autogroup::SelfDevices
                            | Autogroup::Member
                            | Autogroup::Members
                            | Autogroup::Tagged,
                    )
            );
            if !ok {
                self.mark_used(sel);
                let help = match &sel.alias {
                    Alias::Host(_) | Alias::Ip(_) | Alias::Prefix(_) | Alias::Range(..) => {
                        "SSH destinations are devices named by tag, autogroup:self or autogroup:tagged, not addresses or hosts"
                    }
                    Alias::Wildcard => "\"*\" is not a valid SSH destination: use autogroup:self (each user's own devices), autogroup:tagged or tags",
                    _ => "SSH destinations are tags, autogroup:self, autogroup:tagged, or the source user",
                };
                self.error(
                    Code::SshInvalidDst,
                    sel.span,
                    format!("invalid dst {}", quote(&sel.text)),
                    help,
                );
                continue;
            }
            self.reference(sel, Place::SshDst);
            match &sel.alias {
                Alias::Autogroup(Autogroup::SelfDevices) if src_has_tags => {
                    let d = Diagnostic::error(Code::SelfWithInvalidSrc, sel.span, SELF_SOURCES)
                        .with_help(
                        "tagged devices have no owner: autogroup:self needs user or group sources",
                    );
                    self.push(d);
                }
                Alias::Autogroup(Autogroup::Member | Autogroup::Members) if src_has_tags => {
                    self.error(
                        Code::SshTagToUserDevices,
                        sel.span,
                        "tags in SSH source cannot access user-owned devices",
                        "tagged devices may only SSH into other tagged devices",
                    );
                }
                // Tailscale never lets a user SSH into another user's device (kb/1337); the
                // compiler reads this destination as `autogroup:self`.
                Alias::Autogroup(Autogroup::Member | Autogroup::Members) => {
                    self.warning(
                        Code::SshMemberDestination,
                        sel.span,
                        format!(
                            "{} as an SSH destination admits each user only to their own devices",
                            quote(&sel.text)
                        ),
                        "Tailscale never lets a user SSH into another user's device, so aclc reads this as autogroup:self; write autogroup:self (aclc cannot verify whether Tailscale accepts autogroup:member here)",
                    );
                }
                Alias::User(login) => {
                    let that_user = |s: &&Selector| s.alias == Alias::User(login.clone());
                    let only_that_user =
                        !rule.src.is_empty() && rule.src.iter().all(|s| that_user(&s));
                    if only_that_user && rule.src.len() > 1 {
                        // The same devices as one source; whether Tailscale's check counts
                        // entries or users is not captured.
                        let first = rule.src.iter().skip(1).find(that_user).map(|s| s.span);
                        self.warning(
                            Code::UnverifiedRepeatedSshSource,
                            first.unwrap_or(sel.span),
                            format!("{} is repeated in src", quote(&sel.text)),
                            "list the user once; aclc cannot verify that Tailscale accepts a user destination whose source repeats that user",
                        );
                    }
                    if !only_that_user {
                        self.error(
                            Code::SshUserDst,
                            sel.span,
                            format!("invalid dst {}", quote(&sel.text)),
                            "a user as SSH destination requires the source to be exactly that user; use autogroup:self",
                        );
                    }
                }
                _ => {}
            }
        }
        for user in &rule.users {
            if let SshUser::Localpart { domain } = &user.value {
                self.domain(domain, user.span, Place::Approver);
            }
        }
        if let Some(period) = &rule.check_period {
            if let CheckPeriod::Every(d) = period.value {
                let max = GoDuration(168 * GoDuration::HOUR.0);
                if d.is_negative() {
                    self.error(
                        Code::InvalidCheckPeriod,
                        period.span,
                        format!("checkPeriod {d} must be a positive duration"),
                        "write a duration between 0s and 168h, or \"always\"",
                    );
                } else if d > max {
                    self.error(
                        Code::InvalidCheckPeriod,
                        period.span,
                        format!("checkPeriod {d} is above the max (168h)"),
                        "the longest check period is one week, 168h",
                    );
                }
            }
            // An action that could not be read was taken as "accept"; saying the period has
            // no effect on an accept rule would then be misleading.
            if rule.action.value == SshAction::Accept && !self.has_earlier_error(rule.action.span) {
                self.warning(
                    Code::CheckPeriodWithoutCheck,
                    period.span,
                    "checkPeriod has no effect on an accept rule",
                    "use \"action\": \"check\", or remove checkPeriod",
                );
            }
        }
        // Tailscale refuses a check rule from tagged devices: a tag cannot re-authenticate.
        // Evidence: Tailscale SSH (kb/1193: "an SSH access rule from a tagged device cannot be
        // in check mode"); tailscale/tailscale#5027 quotes the refusal, and #9660, where a
        // Tailscale engineer confirms the policy is refused by design.
        if rule.action.value == SshAction::Check && src_has_tags {
            self.error(
                Code::CheckWithTags,
                rule.action.span,
                "\"check\" action does not support tags in src",
                "use \"accept\" for rules from tagged devices: a tag cannot re-authenticate",
            );
        }
        for sel in &rule.recorder {
            if let Alias::Tag(_) = sel.alias {
                self.reference(sel, Place::Recorder);
            } else {
                self.error(
                    Code::InvalidRecorder,
                    sel.span,
                    format!("invalid recorder {}", quote(&sel.text)),
                    "recorders are named by tag",
                );
            }
        }
        if let Some(enforce) = rule.enforce_recorder.as_ref().filter(|e| e.value) {
            if rule.recorder.is_empty() {
                self.warning(
                    Code::EnforceRecorderWithoutRecorder,
                    enforce.span,
                    "enforceRecorder without a recorder does nothing: the sessions this rule admits are not recorded",
                    "name the recorders' tag in \"recorder\": [\"tag:recorder\"] to record and enforce it, or remove enforceRecorder",
                );
            }
        }
        for p in &rule.src_posture {
            self.posture_ref(p);
        }
        self.never_matches(&rule.src, rule.span);
        self.no_destinations(rule.dst.is_empty(), rule.span);
    }

    /// The shape rules Tailscale applies to `sshTests` destinations before running them.
    pub(super) fn ssh_test_dst(&mut self, dst: &str, span: Span) {
        let text = dst.trim();
        let disallowed = text == "autogroup:internet" || crate::model::parse_prefix(text).is_some();
        if disallowed {
            self.error(
                Code::SshTestDst,
                span,
                format!("SSH tests dst contains disallowed element {}", quote(text)),
                "an SSH test destination names devices: a tag, user, host alias or single IP",
            );
        } else if text.starts_with("tag:") {
            self.used.insert(text.to_string());
            if !self.index.tags.contains(text) {
                let help = if text.matches(':').count() > 1 {
                    "SSH test destinations have no port: write the tag alone".to_string()
                } else {
                    self.suggest_tag(text)
                };
                self.error(
                    Code::SshTestDst,
                    span,
                    format!("SSH tests dst contains unknown tag {}", quote(text)),
                    &help,
                );
            }
        }
    }
}
