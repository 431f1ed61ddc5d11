// The AI SDK as a caller of the gateway: one call, described by a JSON argument, printed as JSON.
//   node ai_sdk.mjs '{"provider": "openai"|"openai.chat"|"anthropic", "baseURL": "...", "apiKey": "...",
//                     "model": "...", "call": "generate"|"stream", "tool": true|false}'
// `openai(model)` is the provider's default, the Responses API; `openai.chat(model)` is Chat
// Completions; `anthropic(model)` is Messages. With "tool", the model gets one tool (get_weather)
// that the SDK runs, then a second step.
import { createAnthropic } from '@ai-sdk/anthropic';
import { createOpenAI } from '@ai-sdk/openai';
import { generateText, isStepCount, jsonSchema, streamText, tool } from 'ai';

const spec = JSON.parse(process.argv[2]);
const [family, api] = spec.provider.split('.');
const provider = (family === 'anthropic' ? createAnthropic : createOpenAI)({ baseURL: spec.baseURL, apiKey: spec.apiKey });
const model = api === 'chat' ? provider.chat(spec.model) : provider(spec.model);

const tools = {
  get_weather: tool({
    description: 'Current weather in a city',
    inputSchema: jsonSchema({
      type: 'object',
      properties: { city: { type: 'string' }, unit: { type: 'string', enum: ['celsius', 'f'] } },
      required: ['city'],
      additionalProperties: false,
    }),
    execute: async ({ city }) => `Sunny, 21 degrees in ${city}`,
  }),
};

const options = {
  model,
  prompt: spec.prompt ?? 'What is the weather in Paris?',
  maxRetries: 0,
  ...(spec.tool ? { tools, stopWhen: isStepCount(2) } : {}),
};

const steps = (all) => ({
  steps: all.length,
  toolCalls: all.flatMap((s) => s.toolCalls.map((c) => ({ name: c.toolName, input: c.input }))),
  toolResults: all.flatMap((s) => s.toolResults.map((r) => r.output)),
});

let result;
if (spec.call === 'stream') {
  // A stream that fails is reported, not thrown: the test asserts how the SDK saw it end.
  const errors = [];
  const stream = streamText({ ...options, onError: ({ error }) => errors.push(String(error)) });
  const deltas = [];
  for await (const delta of stream.textStream) deltas.push(delta);
  const settled = async (promise) => promise.then((v) => v, (e) => { errors.push(String(e)); return null; });
  result = {
    deltas,
    text: deltas.join(''),
    finishReason: await settled(stream.finishReason),
    usage: await settled(stream.totalUsage),
    ...steps((await settled(stream.steps)) ?? []),
    errors,
  };
} else {
  const out = await generateText(options);
  result = {
    text: out.text,
    finishReason: out.finishReason,
    usage: out.totalUsage,
    ...steps(out.steps),
    responseId: out.response.id,
  };
}
process.stdout.write(JSON.stringify(result) + '\n');
