package org.apache.samza.azure.errors;

/** A write may or may not have been applied: re-read before acting on it. */
public class OutcomeUnknownException extends AzureCoordinationException {
  private static final long serialVersionUID = 1L;

  public static final String CODE = "OUTCOME_UNKNOWN";

  public OutcomeUnknownException(String message) {
    super(CODE, message);
  }
}
