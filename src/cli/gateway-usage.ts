/** The gateway commands' usage lines (kept apart so `ztaas --help` loads no gateway code). */
export const GATEWAY_USAGE = `  ztaas gateway --config FILE [--stdio] [--http]   serve MCP clients through capabilities (docs/GATEWAY.md)
  ztaas gateway token                              print a new bearer token and its tokenSha256 for the config
  ztaas gateway reload (--config FILE | --store DIR)   reload the gateway's policy file
  ztaas approvals (--config FILE | --store DIR) [--json]   calls waiting for approval
  ztaas approve|deny ID (--config FILE | --store DIR) [--by NAME] [--note TEXT]
  ztaas revoke (--agent ID | --capability ID) (--config FILE | --store DIR) [--reason TEXT]
  ztaas tools [accept SERVER/TOOL --hash H] (--config FILE | --store DIR) [--server NAME] [--json]`;
