package org.apache.samza.azure.jmh;

import java.util.concurrent.TimeUnit;
import org.apache.samza.azure.jni.Native;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Level;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;

/**
 * Cost of one call through the JNI boundary that blocks on the native async runtime: {@code noop}
 * carries nothing, {@code echo} brings back 10 KiB produced on the runtime.
 */
@State(Scope.Benchmark)
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.MICROSECONDS)
public class JniRoundTripBenchmark {
  private static final int ECHO_BYTES = 10 * 1024;

  @Setup(Level.Trial)
  public void load() {
    Native.ensureLoaded();
  }

  @Benchmark
  public void noop() {
    Native.noop();
  }

  @Benchmark
  public byte[] echo10KiB() {
    return Native.echo(ECHO_BYTES);
  }
}
