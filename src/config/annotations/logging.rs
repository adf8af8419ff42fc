//! The access-log switch of an Ingress: `tollgate.dev/enable-access-log`
//! and ingress-nginx's `enable-access-log` (`"false"` turns the access
//! log off for the Ingress's requests; tollgate's wins when both are set).
//! A value other than true or false is a warning and the log stays on.

use super::parser::{Parser, TOLLGATE};

impl Parser<'_> {
    /// Whether the Ingress's requests are left out of the access log.
    pub(super) fn access_log_off(&mut self) -> bool {
        let name = format!("{TOLLGATE}enable-access-log");
        let tollgate = match self.get(&name) {
            Some("true") => Some(true),
            Some("false") => Some(false),
            Some(other) => {
                self.warn(&name, format!("`{other}` is not true or false; ignored"));
                None
            }
            None => None,
        };
        let nginx = self.flag("enable-access-log");
        tollgate.or(nginx) == Some(false)
    }
}

#[cfg(test)]
mod tests {
    use crate::config::snapshot::AnnotationMap;

    use super::super::{parse, LimitStatuses};

    fn off(pairs: &[(&str, &str)]) -> (bool, usize) {
        let map: AnnotationMap = pairs.iter().copied().collect();
        let (a, problems) = parse(Some(&map), LimitStatuses::default());
        (a.policy.no_access_log, problems.len())
    }

    #[test]
    fn either_annotation_turns_the_log_off() {
        assert_eq!(off(&[]), (false, 0));
        assert_eq!(
            off(&[("tollgate.dev/enable-access-log", "false")]),
            (true, 0)
        );
        assert_eq!(
            off(&[("nginx.ingress.kubernetes.io/enable-access-log", "false")]),
            (true, 0)
        );
        assert_eq!(
            off(&[
                ("nginx.ingress.kubernetes.io/enable-access-log", "false"),
                ("tollgate.dev/enable-access-log", "true"),
            ]),
            (false, 0)
        );
        assert_eq!(off(&[("tollgate.dev/enable-access-log", "no")]), (false, 1));
    }
}
