package org.apache.samza.azure.errors;

/** A bug in the native core (a Rust panic), surfaced as an exception instead of a JVM abort. */
public class NativePanicException extends AzureCoordinationException {
  private static final long serialVersionUID = 1L;

  public NativePanicException(String message) {
    super(INTERNAL, message);
  }
}
