package org.apache.samza.azure.errors;

/** Storage rejected the credentials. */
public class StorageAuthenticationException extends AzureCoordinationException {
  private static final long serialVersionUID = 1L;

  public static final String CODE = "AUTHENTICATION";

  public StorageAuthenticationException(String message) {
    super(CODE, message);
  }
}
