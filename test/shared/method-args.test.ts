// The arity table: one place for how many arguments each contract method declares.
import t from 'tap';
import { deviceMethods } from '../../shared/device.js';
import { driverMethods } from '../../shared/driver.js';
import { arityOf, callArguments, methodArity } from '../../shared/method-args.js';
import { requiredMethods } from '../../shared/plugin.js';

const signal = new AbortController().signal;

t.test('every method the host requires of a plugin has an arity', async (t) => {
  for (const method of [...requiredMethods.driver, ...driverMethods, 'validateTask', 'signalTask', 'execTask', 'init', 'shutdown']) {
    t.type(arityOf('driver', method), 'number', `driver ${method}`);
  }
  for (const method of [...requiredMethods.device, ...deviceMethods, 'init', 'shutdown']) {
    t.type(arityOf('device', method), 'number', `device ${method}`);
  }
});

t.test('arities follow the contract and differ by plugin type', async (t) => {
  t.equal(methodArity.driver.stopTask, 3);
  t.equal(arityOf('driver', 'taskStats'), 2);
  t.equal(arityOf('device', 'stats'), 1);
  t.equal(arityOf('driver', 'stats'), undefined, 'a device method is no driver method');
  t.equal(arityOf('driver', 'toString'), undefined, "an object's own prototype is not the table");
});

t.test('callArguments pads, cuts, and appends the signal', async (t) => {
  t.same(callArguments('driver', 'stopTask', ['id', 100], signal), ['id', 100, undefined, signal]);
  t.same(callArguments('driver', 'startTask', [{}, 'extra'], signal), [{}, signal]);
  t.same(callArguments('driver', 'fingerprint', [], signal), [signal]);
  t.same(callArguments('device', 'unknown', [1, 2], signal), [1, 2, signal], 'outside the contract: as sent, then the signal');
});
