/**
 * The JSON Schema of a policy document (draft-07), published as
 * docs/policy.schema.json so editors can check policy files as operators
 * write them. The loader validates with this very schema (ajv), then adds
 * the checks a schema cannot express (target patterns per action kind,
 * regular expressions, duplicate ids, contradictions).
 *
 * The schema avoids `oneOf`/`anyOf` so that every error it reports names
 * one location and one reason.
 */
import { harden } from '../harden.js';

const ID = '^[A-Za-z0-9][A-Za-z0-9._:@/-]{0,127}$';
const NAME = '^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$';

const nonEmptyStrings = (description: string, pattern?: string) => ({
  type: 'array',
  description,
  minItems: 1,
  maxItems: 1000,
  items: { type: 'string', minLength: 1, maxLength: 4096, ...(pattern ? { pattern } : {}) },
});

const scalarList = {
  type: 'array',
  minItems: 1,
  maxItems: 1000,
  items: { type: ['string', 'number', 'boolean', 'null'] },
};

export const POLICY_JSON_SCHEMA = harden({
  $schema: 'http://json-schema.org/draft-07/schema#',
  $id: 'https://ztaas.dev/schemas/policy.schema.json',
  title: 'ZT-AAS policy',
  description: 'Declarative permit/forbid rules over agents, actions, targets, arguments and context. Default deny; a matching forbid wins; a rule that errors denies.',
  type: 'object',
  required: ['version', 'rules'],
  additionalProperties: false,
  properties: {
    version: { const: 1, description: 'Format version; always 1.' },
    description: { type: 'string', maxLength: 4096 },
    taints: {
      type: 'array',
      description: 'Taints an agent acquires by performing matching actions; conditions test them with `taints`.',
      maxItems: 1000,
      items: { $ref: '#/definitions/taint' },
    },
    rules: { type: 'array', maxItems: 100000, items: { $ref: '#/definitions/rule' } },
    delegations: {
      type: 'array',
      description: 'Which agents may give which other agents their own attenuated copy of a capability (E(cap).delegate(to)). Omitted: no delegation at all.',
      maxItems: 10000,
      items: { $ref: '#/definitions/delegation' },
    },
    toolResources: {
      type: 'array',
      description: 'Tool arguments that name files or URLs: each is also decided as a READ, WRITE, EXECUTE or NETWORK request on its value, so file and URL rules follow the resource whatever the channel.',
      maxItems: 1000,
      items: { $ref: '#/definitions/toolResource' },
    },
  },
  definitions: {
    actionType: { enum: ['READ', 'WRITE', 'EXECUTE', 'NETWORK', 'TOOL'] },
    actions: {
      type: 'array',
      description: 'Action types; omitted means every action type its targets fit.',
      minItems: 1,
      uniqueItems: true,
      items: { $ref: '#/definitions/actionType' },
    },
    agents: nonEmptyStrings('Agent ids, or "*" for every agent; omitted means every agent.', '^(?:[A-Za-z0-9][A-Za-z0-9._:@/-]{0,127}|\\*)$'),
    targets: nonEmptyStrings('Target patterns: /path/glob (READ, WRITE, EXECUTE), scheme://host[:port]/path-glob (NETWORK), server/tool (TOOL). Omitted means every target.'),
    rule: {
      type: 'object',
      required: ['id', 'effect'],
      additionalProperties: false,
      properties: {
        id: { type: 'string', pattern: ID, description: 'Unique rule id; decisions and audit records name it.' },
        effect: { enum: ['permit', 'forbid'] },
        description: { type: 'string', maxLength: 4096 },
        agents: { $ref: '#/definitions/agents' },
        actions: { $ref: '#/definitions/actions' },
        targets: { $ref: '#/definitions/targets' },
        when: { $ref: '#/definitions/condition' },
        approval: { $ref: '#/definitions/approval' },
      },
    },
    approval: {
      type: 'object',
      description: 'Permit rules only: a call this rule permits also needs a person\'s approval; no answer within timeoutMs denies (ZT_APPROVAL_TIMEOUT).',
      required: ['timeoutMs'],
      additionalProperties: false,
      properties: {
        timeoutMs: { type: 'integer', minimum: 1, maximum: 86400000, description: 'How long to wait for an answer, in ms (at most one day).' },
        prompt: { type: 'string', minLength: 1, maxLength: 1000, description: 'Shown to the approver.' },
      },
    },
    delegation: {
      type: 'object',
      required: ['id', 'from', 'to'],
      additionalProperties: false,
      properties: {
        id: { type: 'string', pattern: '^[A-Za-z0-9][A-Za-z0-9._:@/-]{0,127}$' },
        description: { type: 'string', maxLength: 4096 },
        from: { $ref: '#/definitions/agents' },
        to: { $ref: '#/definitions/agents' },
        actions: { $ref: '#/definitions/actions' },
        targets: { $ref: '#/definitions/targets' },
      },
    },
    toolResource: {
      type: 'object',
      required: ['targets', 'args'],
      additionalProperties: false,
      properties: {
        description: { type: 'string', maxLength: 4096 },
        targets: nonEmptyStrings('Tool patterns (server/tool, * within a part) whose calls carry these arguments.'),
        args: {
          type: 'object',
          description: 'Argument name (a key of the call\'s arguments) → the action type its value (a string or a list of strings) is a target of. A declared argument that is absent, or not an absolute path (READ, WRITE, EXECUTE) or http(s) URL (NETWORK), denies.',
          minProperties: 1,
          maxProperties: 64,
          propertyNames: { type: 'string', minLength: 1, maxLength: 128 },
          additionalProperties: { enum: ['READ', 'WRITE', 'EXECUTE', 'NETWORK'] },
        },
      },
    },
    taint: {
      type: 'object',
      required: ['name'],
      additionalProperties: false,
      properties: {
        name: { type: 'string', pattern: NAME },
        description: { type: 'string', maxLength: 4096 },
        agents: { $ref: '#/definitions/agents' },
        actions: { $ref: '#/definitions/actions' },
        targets: { $ref: '#/definitions/targets' },
      },
    },
    setTest: {
      type: 'object',
      additionalProperties: false,
      minProperties: 1,
      properties: {
        anyOf: nonEmptyStrings('Holds when the set has at least one of these.', NAME),
        allOf: nonEmptyStrings('Holds when the set has all of these.', NAME),
        noneOf: nonEmptyStrings('Holds when the set has none of these.', NAME),
      },
    },
    instant: { type: ['string', 'integer'], description: 'ISO 8601 date-time (with a zone) or epoch milliseconds.' },
    condition: {
      type: 'object',
      description: 'Every test given must hold.',
      additionalProperties: false,
      minProperties: 1,
      properties: {
        all: { type: 'array', minItems: 1, items: { $ref: '#/definitions/condition' } },
        any: { type: 'array', minItems: 1, items: { $ref: '#/definitions/condition' } },
        not: { $ref: '#/definitions/condition' },
        labels: { $ref: '#/definitions/setTest' },
        taints: { $ref: '#/definitions/setTest' },
        time: {
          type: 'object',
          additionalProperties: false,
          minProperties: 1,
          properties: {
            notBefore: { $ref: '#/definitions/instant' },
            notAfter: { $ref: '#/definitions/instant' },
            hoursUtc: {
              type: 'array',
              minItems: 2,
              maxItems: 2,
              items: { type: 'integer', minimum: 0, maximum: 24 },
            },
            weekdaysUtc: {
              type: 'array',
              minItems: 1,
              uniqueItems: true,
              items: { enum: ['mon', 'tue', 'wed', 'thu', 'fri', 'sat', 'sun'] },
            },
          },
        },
        maxUses: { type: 'integer', minimum: 1, description: 'Holds while the capability was used fewer times than this.' },
        maxBytes: { type: 'integer', minimum: 1, description: 'Holds while the capability moved fewer bytes than this.' },
        rate: {
          type: 'object',
          required: ['max', 'windowMs'],
          additionalProperties: false,
          properties: {
            max: { type: 'integer', minimum: 1 },
            windowMs: { type: 'integer', minimum: 1, maximum: 31536000000 },
          },
        },
        maxAgeMs: { type: 'integer', minimum: 1 },
        args: {
          type: 'object',
          minProperties: 1,
          propertyNames: { type: 'string', minLength: 1, maxLength: 128 },
          additionalProperties: { $ref: '#/definitions/argMatcher' },
        },
        url: {
          type: 'object',
          additionalProperties: false,
          minProperties: 1,
          properties: {
            schemes: { type: 'array', minItems: 1, uniqueItems: true, items: { enum: ['http', 'https'] } },
            hosts: nonEmptyStrings('Host names, or *.suffix.', '^(\\*\\.)?[A-Za-z0-9.-]+$|^\\[[0-9A-Fa-f:.]+\\]$'),
            ports: { type: 'array', minItems: 1, items: { type: 'integer', minimum: 1, maximum: 65535 } },
            paths: nonEmptyStrings('Path globs over the decoded, normalized URL path.'),
          },
        },
      },
    },
    argMatcher: {
      type: 'object',
      additionalProperties: false,
      minProperties: 1,
      properties: {
        present: { type: 'boolean' },
        type: { enum: ['string', 'number', 'integer', 'boolean', 'null', 'array', 'object'] },
        equals: { type: ['string', 'number', 'boolean', 'null'] },
        in: scalarList,
        notIn: scalarList,
        pattern: { type: 'string', minLength: 1, maxLength: 1024 },
        min: { type: 'number' },
        max: { type: 'number' },
        minLength: { type: 'integer', minimum: 0 },
        maxLength: { type: 'integer', minimum: 0 },
        paths: nonEmptyStrings('Path globs; the value is normalized first.'),
        urls: nonEmptyStrings('URL patterns; the value is parsed and normalized first.'),
        each: { $ref: '#/definitions/argMatcher' },
        fields: {
          type: 'object',
          minProperties: 1,
          propertyNames: { type: 'string', minLength: 1, maxLength: 128 },
          additionalProperties: { $ref: '#/definitions/argMatcher' },
        },
      },
    },
  },
});
