/** `ztaas run`'s usage lines (apart, so `ztaas --help` loads nothing else). */
export const RUN_USAGE = `  ztaas run MODULE|--code FILE [--grant [NAME=]KIND:TARGET]... [--policy FILE] [--input JSON] [--agent ID] [--store DIR] [--isolation LEVEL] [--deadline MS] [--json]
                           run an agent module (or a .js/.ts file as submitted code) with the named grants (KIND: read, write, exec, net, tool); exit 0/1 by outcome`;
