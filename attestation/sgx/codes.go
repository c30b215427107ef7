package sgx

// Codes lists every rejection code this package returns, for callers that
// pre-register metrics or document them. TestCodesComplete keeps it in
// step with the source.
var Codes = []string{
	"sgx.request",
	"sgx.evidence.oid", "sgx.evidence.critical", "sgx.evidence.malformed", "sgx.evidence.size",
	"sgx.quote.header", "sgx.quote.truncated", "sgx.quote.oversized", "sgx.quote.certdata", "sgx.quote.malformed",
	"sgx.tcb.malformed", "sgx.tcb.chain", "sgx.tcb.signature", "sgx.tcb.future", "sgx.tcb.expired", "sgx.tcb.eval_data_number",
	"sgx.tcb.fmspc", "sgx.tcb.pceid", "sgx.tcb.level", "sgx.tcb.status", "sgx.tcb.advisory",
	"sgx.pck.malformed", "sgx.pck.chain", "sgx.pck.expired", "sgx.pck.key", "sgx.pck.extension",
	"sgx.crl.signature", "sgx.crl.expired", "sgx.crl.future", "sgx.crl.revoked", "sgx.crl.missing", "sgx.crl.malformed",
	"sgx.qe.signature", "sgx.qe.reportdata", "sgx.qe.svn", "sgx.qe.identity", "sgx.pce.svn", "sgx.isv.key", "sgx.isv.signature",
	"sgx.qeid.malformed", "sgx.qeid.chain", "sgx.qeid.signature", "sgx.qeid.future", "sgx.qeid.expired", "sgx.qeid.eval_data_number",
	"sgx.qeid.mismatch", "sgx.qeid.level", "sgx.qeid.status", "sgx.qeid.advisory",
	"sgx.csr.key", "sgx.binding",
	"sgx.policy.invalid", "sgx.policy.mrsigner", "sgx.policy.mrenclave", "sgx.policy.mrenclave_denied",
	"sgx.policy.product_id", "sgx.policy.svn", "sgx.policy.debug", "sgx.policy.attributes", "sgx.policy.misc_select",
}
