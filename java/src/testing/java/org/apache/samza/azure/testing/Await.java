package org.apache.samza.azure.testing;

import java.util.function.BooleanSupplier;

/** Waits for a condition with a bound, instead of sleeping a guessed time. */
public final class Await {
  private Await() {}

  public static void until(String what, long boundMillis, BooleanSupplier condition)
      throws InterruptedException {
    long deadline = System.nanoTime() + boundMillis * 1_000_000L;
    while (!condition.getAsBoolean()) {
      if (System.nanoTime() > deadline) {
        throw new AssertionError("timed out after " + boundMillis + " ms waiting for " + what);
      }
      Thread.sleep(20);
    }
  }
}
