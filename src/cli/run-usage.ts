/** `ztaas run`'s usage lines (apart, so `ztaas --help` loads nothing else). */
export const RUN_USAGE = `  ztaas run MODULE [--grant [NAME=]KIND:TARGET]... [--policy FILE] [--input JSON] [--agent ID] [--store DIR] [--isolation LEVEL] [--deadline MS] [--json]
                           run an agent module with the named grants (KIND: read, write, exec, net, tool); exit 0/1 by outcome`;
