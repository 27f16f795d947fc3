package e2e

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/ratelimit-exporter/ratelimit_exporter/internal/testkit"
)

// Series as yet-another-cloudwatch-exporter writes them for the job
// README.md's Sources section gives (AWS/Bedrock, Sum per minute, labels
// not in snake case), and as stackdriver_exporter writes Cloud Monitoring's
// quota metrics of Vertex AI and the Gemini API. prometheus/cloud_test.yml
// tests each mapping; here a real Prometheus scrapes them, records them with
// the shipped rules, and the dashboard's queries read them.
const (
	yaceSeries = `# HELP aws_bedrock_estimated_tpmquota_usage_sum Help is not implemented yet.
# TYPE aws_bedrock_estimated_tpmquota_usage_sum gauge
aws_bedrock_estimated_tpmquota_usage_sum{account_id="123456789012",dimension_ModelId="us.anthropic.claude-sonnet-4-20250514-v1:0",name="global",region="us-east-1"} 100000
# HELP aws_bedrock_invocations_sum Help is not implemented yet.
# TYPE aws_bedrock_invocations_sum gauge
aws_bedrock_invocations_sum{account_id="123456789012",dimension_ModelId="us.anthropic.claude-sonnet-4-20250514-v1:0",name="global",region="us-east-1"} 10
# HELP aws_bedrock_invocation_throttles_sum Help is not implemented yet.
# TYPE aws_bedrock_invocation_throttles_sum gauge
aws_bedrock_invocation_throttles_sum{account_id="123456789012",dimension_ModelId="us.anthropic.claude-sonnet-4-20250514-v1:0",name="global",region="us-east-1"} 2
`
	stackdriverSeries = `# TYPE stackdriver_aiplatform_googleapis_com_location_aiplatform_googleapis_com_quota_generate_content_requests_per_minute_per_project_per_base_model_usage gauge
stackdriver_aiplatform_googleapis_com_location_aiplatform_googleapis_com_quota_generate_content_requests_per_minute_per_project_per_base_model_usage{base_model="gemini-1.5-flash",location="us-central1",method="google.cloud.aiplatform.v1.PredictionService.GenerateContent",resource_container="vertex-project",unit="1"} 150
# TYPE stackdriver_aiplatform_googleapis_com_location_aiplatform_googleapis_com_quota_generate_content_requests_per_minute_per_project_per_base_model_limit gauge
stackdriver_aiplatform_googleapis_com_location_aiplatform_googleapis_com_quota_generate_content_requests_per_minute_per_project_per_base_model_limit{base_model="gemini-1.5-flash",limit_name="GenerateContentRequestsPerMinutePerProjectPerRegionPerBaseModel",location="us-central1",resource_container="vertex-project",unit="1"} 200
# TYPE stackdriver_aiplatform_googleapis_com_location_aiplatform_googleapis_com_quota_generate_content_requests_per_minute_per_project_per_base_model_exceeded gauge
stackdriver_aiplatform_googleapis_com_location_aiplatform_googleapis_com_quota_generate_content_requests_per_minute_per_project_per_base_model_exceeded{base_model="gemini-1.5-flash",limit_name="GenerateContentRequestsPerMinutePerProjectPerRegionPerBaseModel",location="us-central1",resource_container="vertex-project",unit="1"} 1
# TYPE stackdriver_generativelanguage_googleapis_com_location_generativelanguage_googleapis_com_quota_generate_content_free_tier_requests_usage gauge
stackdriver_generativelanguage_googleapis_com_location_generativelanguage_googleapis_com_quota_generate_content_free_tier_requests_usage{location="global",method="google.ai.generativelanguage.v1beta.GenerativeService.GenerateContent",model="gemini-2.0-flash",project_id="gemini-project",resource_container="123456789",unit="1"} 5
# TYPE stackdriver_generativelanguage_googleapis_com_location_generativelanguage_googleapis_com_quota_generate_content_free_tier_requests_limit gauge
stackdriver_generativelanguage_googleapis_com_location_generativelanguage_googleapis_com_quota_generate_content_free_tier_requests_limit{limit_name="GenerateRequestsPerMinutePerProjectPerModel-FreeTier",location="global",model="gemini-2.0-flash",project_id="gemini-project",resource_container="123456789",unit="1"} 15
stackdriver_generativelanguage_googleapis_com_location_generativelanguage_googleapis_com_quota_generate_content_free_tier_requests_limit{limit_name="GenerateRequestsPerDayPerProjectPerModel-FreeTier",location="global",model="gemini-2.0-flash",project_id="gemini-project",resource_container="123456789",unit="1"} 1500
`
)

// startCloudExporters serves yaceSeries at /yace and stackdriverSeries at
// /stackdriver, and returns the scrape configs of both, their target, and
// a rule file with the README's declared Bedrock quotas.
func startCloudExporters(t *testing.T) (scrapeConfigs, target, quotaRules string) {
	t.Helper()
	mux := http.NewServeMux()
	for path, body := range map[string]string{"/yace": yaceSeries, "/stackdriver": stackdriverSeries} {
		mux.HandleFunc(path, func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", "text/plain; version=0.0.4")
			_, _ = w.Write([]byte(body))
		})
	}
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	target = strings.TrimPrefix(srv.URL, "http://")
	var declared string
	for _, block := range readmeYAMLBlocks(t, "### Amazon Bedrock (through yet-another-cloudwatch-exporter)") {
		if strings.Contains(block, "record: ratelimit_bedrock_quota") {
			declared = block
		}
	}
	if declared == "" {
		t.Fatal("the README's Bedrock section declares no ratelimit_bedrock_quota")
	}
	quotaRules, err := testkit.WriteFile(t.TempDir(), "bedrock_quotas.yml", declared)
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for _, job := range []string{"yace", "stackdriver"} {
		b.WriteString("  - job_name: " + job + "\n    metrics_path: /" + job + "\n    static_configs:\n      - targets: [\"" + target + "\"]\n")
	}
	return b.String(), target, quotaRules
}
