// The AI SDK as a caller of the gateway: one call, described by a JSON argument, printed as JSON.
//   node ai_sdk.mjs '{"provider": "openai"|"anthropic", "baseURL": "...", "apiKey": "...",
//                     "model": "...", "call": "generate"|"stream", "tool": true|false}'
// `openai(model)` is the provider's default, the Responses API; `anthropic(model)` is Messages.
// With "tool", the model gets one tool (get_weather) that the SDK runs, then a second step.
import { createAnthropic } from '@ai-sdk/anthropic';
import { createOpenAI } from '@ai-sdk/openai';
import { generateText, isStepCount, jsonSchema, streamText, tool } from 'ai';

const spec = JSON.parse(process.argv[2]);
const make = spec.provider === 'anthropic' ? createAnthropic : createOpenAI;
const provider = make({ baseURL: spec.baseURL, apiKey: spec.apiKey });

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
  model: provider(spec.model),
  prompt: spec.prompt ?? 'What is the weather in Paris?',
  maxRetries: 0,
  ...(spec.tool ? { tools, stopWhen: isStepCount(2) } : {}),
};

let result;
if (spec.call === 'stream') {
  const errors = [];
  const stream = streamText({ ...options, onError: ({ error }) => errors.push(String(error)) });
  const deltas = [];
  for await (const delta of stream.textStream) deltas.push(delta);
  result = {
    deltas,
    text: await stream.text,
    finishReason: await stream.finishReason,
    usage: await stream.totalUsage,
    steps: (await stream.steps).length,
    toolCalls: (await stream.steps).flatMap((s) => s.toolCalls.map((c) => ({ name: c.toolName, input: c.input }))),
    toolResults: (await stream.steps).flatMap((s) => s.toolResults.map((r) => r.output)),
    errors,
  };
} else {
  const out = await generateText(options);
  result = {
    text: out.text,
    finishReason: out.finishReason,
    usage: out.totalUsage,
    steps: out.steps.length,
    toolCalls: out.steps.flatMap((s) => s.toolCalls.map((c) => ({ name: c.toolName, input: c.input }))),
    toolResults: out.steps.flatMap((s) => s.toolResults.map((r) => r.output)),
    responseId: out.response.id,
  };
}
process.stdout.write(JSON.stringify(result) + '\n');
