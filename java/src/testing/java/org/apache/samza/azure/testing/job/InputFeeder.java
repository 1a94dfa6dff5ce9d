package org.apache.samza.azure.testing.job;

import java.io.IOException;
import java.util.ArrayList;
import java.util.Collection;
import java.util.Collections;
import java.util.List;

/**
 * Feeds a job's input as an outside producer would: every 50 ms, one message to each partition it
 * is told to feed, in a daemon thread, until stopped. How a message is appended (a line in a file,
 * an event in a fake hub) is the caller's {@link Appender}.
 */
public final class InputFeeder implements AutoCloseable {
  private static final long PERIOD_MS = 50;

  /** Appends one message to a partition of the input. */
  @FunctionalInterface
  public interface Appender {
    /** {@code round} counts the feeder's rounds before this one, from 0. */
    void append(int partition, long round) throws IOException;
  }

  private final Appender appender;
  private final Thread thread;
  private volatile List<Integer> partitions = Collections.emptyList();
  private volatile boolean running = true;

  /** Starts the thread, feeding no partition until {@link #feed} names some. */
  public InputFeeder(Appender appender) {
    this.appender = appender;
    this.thread = new Thread(this::run, "input-feeder");
    thread.setDaemon(true);
    thread.start();
  }

  /** From the next round on, feeds exactly {@code partitions}, in this order. */
  public void feed(Collection<Integer> partitions) {
    this.partitions = new ArrayList<>(partitions);
  }

  private void run() {
    long round = 0;
    try {
      while (running) {
        for (int p : partitions) {
          appender.append(p, round);
        }
        round++;
        // The feeding rate itself, not a wait for anything.
        Thread.sleep(PERIOD_MS);
      }
    } catch (IOException | InterruptedException e) {
      // stopped (or the input is gone, at the end of a run)
    }
  }

  /** Stops feeding, and waits (up to 10 s) until the last append is done. */
  public void stop() {
    running = false;
    try {
      thread.join(10_000);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
    }
  }

  @Override
  public void close() {
    stop();
  }
}
