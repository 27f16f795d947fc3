// The monitoring mixin of ratelimit_exporter: its recording rules, alerts
// and Grafana dashboard, to vendor with jsonnet-bundler and combine with
// other mixins.
//
// One source: the mixin imports ../prometheus/rules.yml,
// ../prometheus/alerts.yml, ../prometheus/cloud.rules.yml and
// ../grafana/dashboard.json, the files that promtool's unit tests, the
// end-to-end tests and the Helm chart use, and applies _config to them.
// With the default _config it yields those files exactly
// (mixin/mixin_test.go checks it).
local rules = std.parseYaml(importstr '../prometheus/rules.yml');
local cloudRules = std.parseYaml(importstr '../prometheus/cloud.rules.yml');
local alerts = std.parseYaml(importstr '../prometheus/alerts.yml');
local dashboard = std.parseJson(importstr '../grafana/dashboard.json');

// replace replaces each of the count occurrences of from in s, and fails
// if s has another number of them: a file that changed under the mixin
// must not silently leave a setting unapplied.
local replace(s, from, to, count=1) =
  local found = std.length(std.findSubstr(from, s));
  assert found == count : 'mixin: expected %d of %s in %s, found %d' % [count, std.manifestJson(from), std.manifestJson(s), found];
  std.strReplace(s, from, to);

local nameChars = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_:';

// withSelector adds selector to every selector of the exporter's own
// metrics (ratelimit_*) in expr. Recording rules' names (window:ratelimit_
// remaining:ratio) already carry the labels of what they were made from.
local withSelector(expr, selector) =
  if selector == '' then expr
  else
    local pieces = std.split(expr, 'ratelimit_');
    pieces[0] + std.join('', [
      local before = pieces[i - 1];
      local piece = pieces[i];
      local rest = std.lstripChars(piece, nameChars);
      local name = std.substr(piece, 0, std.length(piece) - std.length(rest));
      if std.length(before) > 0 && std.member(nameChars, before[std.length(before) - 1]) then
        'ratelimit_' + piece  // inside a longer name
      else if std.startsWith(rest, '{') then
        'ratelimit_' + name + '{' + selector + ', ' + std.substr(rest, 1, std.length(rest) - 1)
      else
        'ratelimit_' + name + '{' + selector + '}' + rest
      for i in std.range(1, std.length(pieces) - 1)
    ]);

{
  _config+:: {
    // Added to every selector of the exporter's metrics in the rules and
    // alerts, such as 'job="ratelimit"'. Empty: every job. The windows
    // cloud.rules.yml records carry the job of the exporter they come from
    // (yet-another-cloudwatch-exporter's, stackdriver_exporter's): a
    // selector that leaves those jobs out leaves the clouds out of the
    // alerts, as 'job=~"ratelimit|yace|stackdriver"' would not.
    ratelimitSelector: '',
    // RateLimitNearlyExhausted fires when at most this share of a
    // window's limit is left: for a window that gives its utilization,
    // when at least 1 - nearlyExhaustedRatio of it is used.
    nearlyExhaustedRatio: 0.1,
    // RateLimitDataStale fires when no rate limits were read for this many
    // probe intervals, and at least staleMinimumSeconds.
    staleProbeIntervals: 3,
    staleMinimumSeconds: 300,
    // Where each alert's runbook_url points, followed by the alert's name
    // in lower case.
    runbookURLBase: 'https://github.com/ratelimit-exporter/ratelimit_exporter/blob/main/README.md#',
  },

  local c = self._config,
  local defaultRunbooks = 'https://github.com/ratelimit-exporter/ratelimit_exporter/blob/main/README.md#',

  local tuneAlert(rule) =
    local stale = '%d * max by (job, key, provider, model) (ratelimit_probe_interval_seconds), %d' % [c.staleProbeIntervals, c.staleMinimumSeconds];
    local expr =
      if rule.alert == 'RateLimitNearlyExhausted' then
        replace(rule.expr, '<= 0.1', '<= %g' % c.nearlyExhaustedRatio)
      else if rule.alert == 'RateLimitDataStale' then
        replace(rule.expr, '3 * max by (job, key, provider, model) (ratelimit_probe_interval_seconds), 300', stale, count=2)
      else rule.expr;
    rule {
      expr: withSelector(expr, c.ratelimitSelector),
      annotations+: {
        runbook_url: replace(super.runbook_url, defaultRunbooks, c.runbookURLBase),
        [if rule.alert == 'RateLimitDataStale' then 'description']:
          replace(super.description, 'more than 3 probe intervals', 'more than %d probe intervals' % c.staleProbeIntervals),
      },
    },

  prometheusRules+:: {
    groups+: [
      group { rules: [rule { expr: withSelector(rule.expr, c.ratelimitSelector) } for rule in group.rules] }
      for group in rules.groups
    ] + [
      // They read other exporters' series and record windows of their
      // jobs: the exporter's selector is not theirs.
      group
      for group in cloudRules.groups
    ],
  },

  prometheusAlerts+:: {
    groups+: [
      group { rules: [tuneAlert(rule) for rule in group.rules] }
      for group in alerts.groups
    ],
  },

  grafanaDashboards+:: {
    'ratelimit-exporter.json': dashboard,
  },
}
