package org.apache.samza.azure.errors;

/** A conditional write lost its compare-and-swap: the ETag was stale. */
public class PreconditionFailedException extends AzureCoordinationException {
  private static final long serialVersionUID = 1L;

  public static final String CODE = "PRECONDITION_FAILED";

  public PreconditionFailedException(String message) {
    super(CODE, message);
  }
}
